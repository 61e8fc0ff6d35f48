"""The playground in the browser: move a knob, watch the paths redraw.

  python main.py --config=configs/playground_web.py --workdir=/tmp/web

serves one page (playground/static/index.html) on 127.0.0.1 and prints its
URL. The page draws with Plotly.js, served from the installed `plotly`
package (the page needs no network); this server only computes: each change
POSTs the settings to /api/run, which checks them, runs
`runs.compute` (the registry's optimizers in JAX, hyperparameters traced, so
one compilation per problem and optimizer set) and returns the paths, the
loss curves and the summary table. Bad input comes back as a 400 with a
one-line message the page shows; nothing a user types reaches a traceback.
A body over MAX_BODY (or a download link's q over MAX_QUERY) is a 413 before
it is parsed, JSON nested deeper than MAX_DEPTH a 400, and an unknown path
or method its 404 or 405, each with a one-line JSON 'error'.

Starlette (the ASGI toolkit under FastAPI) serves the routes and uvicorn runs
them; both start in about 0.1 s and install in under 2 MB.
"""

import base64
import inspect
import json
import logging
import math
import os
import socket
import time
from typing import Any, Optional

import ml_collections
import numpy as np

from adamjax.common import checks
from adamjax.common import errors

# The web page's own packages (requirements-web.txt): without them the
# playground still runs from the command line (config.task=playground).
WEB_PACKAGES = ('contourpy', 'plotly', 'starlette', 'uvicorn')
with errors.optional_packages(WEB_PACKAGES, "the playground's web page needs",
                              'requirements-web.txt'):
  # pylint: disable=g-import-not-at-top
  import contourpy
  import plotly
  from starlette.applications import Starlette
  from starlette.concurrency import run_in_threadpool
  from starlette.exceptions import HTTPException
  from starlette.requests import Request
  from starlette.responses import FileResponse, JSONResponse, Response
  from starlette.routing import Route
  import uvicorn
  # pylint: enable=g-import-not-at-top
from adamjax.optim import registry
from adamjax.playground import problems
from adamjax.playground import runs as runs_lib
from adamjax.playground import task
from adamjax.playground import trajectories
from adamjax.playground import writers

MAX_OPTIMIZERS = 5
# A request's size and shape: the page's settings are under 2 KB and 4
# levels deep, so these bound a request's parsing and checking time (and
# keep Python's recursion, in the parser or in a message's repr, far away).
MAX_BODY = 1 << 20  # Bytes of a POST body; more is a 413.
MAX_QUERY = 16 << 10  # Characters of a download link's q; more is a 413.
MAX_DEPTH = 16  # Nesting of the JSON settings.
MAX_MESSAGE = 400  # Characters of an error message; the middle is cut.
# The compiled buffers hold this many steps, so any count up to it reuses
# one compilation (a shorter run stops its loop early).
MAX_STEPS = 10_000
STEPS = checks.Range(1, MAX_STEPS)
CONTOUR_POINTS = 101  # Per axis: smooth enough, and half the vertices of 201.
STATIC = os.path.join(os.path.dirname(__file__), 'static')
PLOTLY_JS = os.path.join(os.path.dirname(plotly.__file__), 'package_data',
                         'plotly.min.js')


# ----------------------------------------------------------------------------
# Reading the page's settings.


def _number(name: str, value: Any, accepted: checks.Range = checks.ANY, *,
            integer: bool = False) -> Any:
  """checks.number of a JSON number or an input box's text ('1e3', '0.1')."""
  if isinstance(value, str) or checks.is_int(value):
    try:
      value = float(value)
    except ValueError:
      pass  # 'abc': checks.number refuses it by its text.
    except OverflowError:
      value = math.inf  # A JSON integer beyond float, e.g. 10**400.
  if integer and isinstance(value, float) and value.is_integer():
    value = int(value)
  return checks.number(name, value, accepted, integer=integer)


def _check_count(optimizers: Any) -> None:
  """Checks a list or tuple of 1 to MAX_OPTIMIZERS optimizers."""
  if not isinstance(optimizers, (list, tuple)):
    checks.fail('optimizers', optimizers,
                f'a list of 1 to {MAX_OPTIMIZERS} optimizers')
  checks.number('len(optimizers)', len(optimizers),
                checks.Range(1, MAX_OPTIMIZERS), integer=True)


def optimizer_knobs(name: str) -> dict[str, Any]:
  """What the page offers for optimizer `name`: numbers and options.

  Args:
    name: a key of registry.OPTIMIZERS.

  Returns:
    {'numbers': {hyperparameter: default}, 'options': {option: default}}.
  """
  numbers = trajectories.numeric_defaults(name)
  signature = inspect.signature(registry.OPTIMIZERS[name])
  # Checkboxes for the settable booleans it takes (nesterov, amsgrad,
  # centered, bias correction, ...), as the registry lists them.
  options = {k: signature.parameters[k].default
             for k in registry.hyperparameters(name)
             if registry.HYPERPARAMETER_TYPES[k] is bool}
  return {'numbers': numbers, 'options': options}


def parse(settings: Any) -> tuple[problems.Problem, tuple[float, float], int,
                                  float, list[runs_lib.Setting]]:
  """Checks the page's settings and converts them.

  Args:
    settings: the decoded JSON: {'problem', 'start': [x, y], 'steps',
      'tolerance', 'optimizers': [{'name', 'learning_rate', 'numbers':
      {hyperparameter: value}, 'options': {option: bool}}, ...]}; numbers
      may be the text of an input box.

  Returns:
    (problem, start, steps, tolerance, settings).

  Raises:
    errors.ConfigError: naming the field, the value and what is accepted.
  """
  if not isinstance(settings, dict):
    raise errors.ConfigError('The request is not a JSON object of settings.')
  problem = problems.get_problem(settings.get('problem'))
  start = settings.get('start')
  if not (isinstance(start, list) and len(start) == 2):
    checks.fail('start', start, '[x, y]')
  # Within the plot: the page can show (and click) nowhere else.
  start = (_number('start x', start[0], checks.Range(*problem.xlim)),
           _number('start y', start[1], checks.Range(*problem.ylim)))
  steps = _number('steps', settings.get('steps'), STEPS, integer=True)
  tolerance = _number('tolerance', settings.get('tolerance'), checks.POSITIVE)
  chosen = settings.get('optimizers')
  _check_count(chosen)
  parsed = []
  for i, entry in enumerate(chosen):
    checks.mapping(f'optimizers[{i}]', entry,
                   ('name', 'learning_rate', 'numbers', 'options'))
    name = task.optimizer_name(f'optimizers[{i}].name', entry.get('name'))
    knobs = optimizer_knobs(name)
    # Its range is the registry's, checked as the optimizer is built.
    rate = _number(f'{name} learning_rate', entry.get('learning_rate'))
    numbers = checks.mapping(f'{name} numbers', entry.get('numbers') or {},
                             knobs['numbers'])
    options = checks.mapping(f'{name} options', entry.get('options') or {},
                             knobs['options'])
    hparams = {key: _number(f'{name} {key}', value)
               for key, value in numbers.items()}
    hparams.update((key, checks.boolean(f'{name} option {key}', value))
                   for key, value in options.items())
    parsed.append(runs_lib.Setting(name, rate, hparams))
  return problem, start, steps, tolerance, parsed


def compute(settings: Any) -> tuple[list[runs_lib.Run], dict[str, float]]:
  """Checks and runs the page's settings; returns the runs and timings.

  Args:
    settings: as for `parse`.

  Returns:
    (runs, timing): timing has 'compute_ms' (the JAX computation and the
    cutting, compilation included when one happened), 'compiled' (1.0 if
    this call compiled a new program, else 0.0) and 'steps'.

  Raises:
    errors.ConfigError: on bad settings (the registry's checks included).
  """
  problem, start, steps, tolerance, parsed = parse(settings)
  cache = trajectories.compiled_programs()
  began = time.perf_counter()
  result = runs_lib.compute(problem, parsed, start, steps, tolerance,
                            max_steps=MAX_STEPS)
  elapsed = 1000 * (time.perf_counter() - began)
  compiled = trajectories.compiled_programs() > cache
  return result, {'compute_ms': elapsed, 'compiled': float(compiled),
                  'steps': steps}


def _float32s(values: np.ndarray) -> str:
  """Float32 values as base64 of their little-endian bytes."""
  # Exact, and a quarter of the size of JSON decimals (a float32's float64
  # repr has 17 digits): tens of milliseconds off a 5 x 2,000-step redraw.
  return base64.b64encode(np.asarray(values, '<f4').tobytes()).decode()


def run_json(result: list[runs_lib.Run]) -> list[dict[str, Any]]:
  """The runs as the page draws them: x, y and loss as `_float32s`."""
  return [{'label': r.label, 'legend': r.legend, 'status': r.status,
           'x': _float32s(r.points[:, 0]), 'y': _float32s(r.points[:, 1]),
           'loss': _float32s(r.losses)} for r in result]


def contour_json(name: str) -> dict[str, Any]:
  """The problem's landscape for the page: contour lines and a click grid.

  The lines are traced here once per problem (contourpy, matplotlib's own
  contouring library, at the matplotlib figures' levels), so the page only
  draws polylines on each redraw instead of re-tracing contours.

  Args:
    name: a key of problems.PROBLEMS.

  Returns:
    {'lines': {'x', 'y'} (one polyline per piece, separated by null),
    'formula', 'xlim', 'ylim', 'start', 'landmarks'}.
  """
  problem = problems.get_problem(name)
  xs, ys, z = problems.grid(problem, (problem.xlim, problem.ylim),
                            CONTOUR_POINTS)
  generator = contourpy.contour_generator(xs, ys, z)
  line_x, line_y = [], []
  for level in problems.contour_levels(z, problem.log_levels):
    for piece in generator.lines(level):
      line_x += np.round(piece[:, 0], 4).tolist() + [None]
      line_y += np.round(piece[:, 1], 4).tolist() + [None]
  return {'formula': problem.formula, 'xlim': problem.xlim,
          'ylim': problem.ylim, 'start': problem.start,
          'landmarks': problem.landmarks,
          'lines': {'x': line_x, 'y': line_y}}


# ----------------------------------------------------------------------------
# The app.


class TooLargeError(errors.ConfigError):
  """A request larger than the server reads: answered with a 413."""


def _one_line(message: str) -> str:
  """`message` on one line of at most MAX_MESSAGE characters.

  The middle of a long message is cut: its start names the field and its
  end says what is accepted (a value's repr can be a megabyte long).
  """
  message = ' '.join(message.splitlines())
  if len(message) <= MAX_MESSAGE:
    return message
  half = (MAX_MESSAGE - 5) // 2
  return f'{message[:half]} ... {message[-half:]}'


def _error(e: errors.UserError) -> JSONResponse:
  """A bad-input answer: 400 (413 if too large) and a one-line message."""
  status = 413 if isinstance(e, TooLargeError) else 400
  return JSONResponse({'error': _one_line(str(e))}, status_code=status)


def _depth_at_most(value: Any, limit: int) -> bool:
  """Whether decoded JSON `value` nests at most `limit` lists and dicts."""
  stack = [(value, 1)]  # Iterative: no recursion, however deep.
  while stack:
    item, depth = stack.pop()
    if isinstance(item, (list, dict)):
      if depth > limit:
        return False
      children = item.values() if isinstance(item, dict) else item
      stack.extend((child, depth + 1) for child in children)
  return True


def decode(text: bytes | str, name: str) -> Any:
  """JSON settings from `text`; one-line errors, never a RecursionError.

  NaN and Infinity tokens (which Python's json accepts) decode to floats,
  so the field's own check refuses them by name ('steps=nan is invalid').

  Args:
    text: the JSON text (a POST body or a download link's q).
    name: what it is, for messages ('The request', 'q').

  Raises:
    errors.ConfigError: if it is not JSON (or not UTF-8), or nests deeper
      than MAX_DEPTH.
  """
  deep = errors.ConfigError(f'{name} is nested too deeply; accepted: JSON '
                            f'settings nested at most {MAX_DEPTH} levels.')
  try:
    value = json.loads(text)
  except RecursionError as e:  # Python's parser recurses per level.
    raise deep from e
  except json.JSONDecodeError as e:
    raise errors.ConfigError(f'{name} is not JSON settings: {e.msg}.') from e
  except ValueError as e:  # Not UTF-8, or an integer of > 4300 digits.
    raise errors.ConfigError(f'{name} is not JSON settings.') from e
  if not _depth_at_most(value, MAX_DEPTH):
    raise deep
  return value


async def read_body(request: Request) -> bytes:
  """The POST body, refused (413) past MAX_BODY bytes before it is parsed.

  Content-Length is checked first, and the bytes actually read are counted
  too (a chunked body has none, and a client can send more than it says).

  Raises:
    errors.ConfigError: on a bad Content-Length; TooLargeError past the cap.
  """
  too_large = TooLargeError(f'The request body is over {MAX_BODY} bytes; '
                            f'accepted: at most {MAX_BODY}.')
  length = request.headers.get('content-length')
  if length is not None:
    if not length.isdigit():
      raise errors.ConfigError(f'Content-Length={length[:20]!r} is invalid; '
                               'accepted: a whole number of bytes.')
    if int(length) > MAX_BODY:
      raise too_large
  body = bytearray()
  async for chunk in request.stream():
    body += chunk
    if len(body) > MAX_BODY:
      raise too_large
  return bytes(body)


def _settings_from_query(request: Request) -> Any:
  """The settings a download link carries as JSON in its `q` parameter."""
  q = request.query_params.get('q', '')
  if len(q) > MAX_QUERY:
    raise TooLargeError(f'q is {len(q)} characters long; accepted: at most '
                        f'{MAX_QUERY}.')
  return decode(q, 'q')


def create_app(defaults: dict[str, Any],
               workdir: Optional[str] = None) -> Starlette:
  """The Starlette app serving the page and its API.

  Args:
    defaults: the page's first settings (as `parse` takes them).
    workdir: if set, downloads also save a copy here.

  Returns:
    The ASGI app.
  """
  log = logging.getLogger('playground.web')

  def index(request: Request) -> Response:
    """The page."""
    del request
    return FileResponse(os.path.join(STATIC, 'index.html'))

  def plotly_js(request: Request) -> Response:
    """Plotly.js from the installed plotly package."""
    del request
    return FileResponse(PLOTLY_JS, media_type='text/javascript')

  def meta(request: Request) -> Response:
    """Problems, optimizers and their knobs, the defaults and the limits."""
    del request
    return JSONResponse({
        'problems': list(problems.PROBLEMS),
        'optimizers': {n: optimizer_knobs(n) for n in registry.OPTIMIZERS},
        'defaults': defaults,
        'limits': {'steps': MAX_STEPS, 'optimizers': MAX_OPTIMIZERS}})

  def landscape(request: Request) -> Response:
    """The contour grid of one problem."""
    try:
      return JSONResponse(contour_json(request.path_params['name']))
    except errors.UserError as e:
      return _error(e)

  async def run(request: Request) -> Response:
    """Runs the posted settings; the paths, losses, table and timings."""
    began = time.perf_counter()
    try:
      settings = decode(await read_body(request), 'The request')
    except errors.UserError as e:
      return _error(e)
    try:
      # In a worker thread: the event loop keeps serving the page meanwhile.
      result, timing = await run_in_threadpool(compute, settings)
    except errors.UserError as e:
      return _error(e)
    body = {'runs': run_json(result),
            'table': {'header': writers.SUMMARY_HEADER,
                      'rows': writers.summary_rows(result)}}
    timing['server_ms'] = 1000 * (time.perf_counter() - began)
    body['timing'] = timing
    log.info('%d optimizers x %d steps: %s in %.1f ms, answered in %.1f ms',
             len(result), timing['steps'],
             'compiled and computed' if timing['compiled'] else 'computed',
             timing['compute_ms'], timing['server_ms'])
    return JSONResponse(body)

  def _download(data: bytes, name: str, media_type: str) -> Response:
    """The bytes as an attachment, also saved to the workdir if set."""
    if workdir is not None:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, name), 'wb') as f:
        f.write(data)
    return Response(data, media_type=media_type, headers={
        'Content-Disposition': f'attachment; filename="{name}"'})

  def trajectories_csv(request: Request) -> Response:
    """The current trajectories as CSV (the command line's format)."""
    try:
      result, _ = compute(_settings_from_query(request))
    except errors.UserError as e:
      return _error(e)
    return _download(writers.trajectories_csv(result).encode(),
                     'playground_trajectories.csv', 'text/csv')

  def figure_png(request: Request) -> Response:
    """The current paths as the command line's contour figure (PNG)."""
    try:
      settings = _settings_from_query(request)
      result, _ = compute(settings)
    except errors.UserError as e:
      return _error(e)
    # Imported here: matplotlib loads only when a figure is drawn.
    from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
    problem = problems.get_problem(settings['problem'])
    fig = figures.contour_figure(problem, result, dpi=100)
    return _download(figures.png_bytes(fig), 'playground_contour.png',
                     'image/png')

  def http_error(request: Request, exc: Exception) -> Response:
    """An unknown path or method: its status, and a one-line JSON message."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {'error': _one_line(f'{request.method} {request.url.path}: '
                            f'{exc.detail}.')},
        status_code=exc.status_code, headers=exc.headers)

  return Starlette(exception_handlers={HTTPException: http_error}, routes=[
      Route('/', index),
      Route('/static/plotly.min.js', plotly_js),
      Route('/api/meta', meta),
      Route('/api/problem/{name}', landscape),
      Route('/api/run', run, methods=['POST']),
      Route('/api/trajectories.csv', trajectories_csv),
      Route('/api/figure.png', figure_png),
  ])


# ----------------------------------------------------------------------------
# The task.


def defaults_from_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The page's first settings from the config, checked as the page's are.

  Args:
    config: the web config (see configs/playground_web.py).

  Returns:
    Settings as `parse` takes them.

  Raises:
    errors.ConfigError: naming the config field at fault.
  """
  problem = problems.get_problem(config.problem)
  _check_count(config.optimizers)
  names = checks.sequence('optimizers', config.optimizers, task.optimizer_name,
                          example='"(\'adam\', \'sgd\')"', distinct=False)
  checks.number('steps', config.steps, STEPS, integer=True)
  checks.number('tolerance', config.tolerance, checks.POSITIVE)
  checks.number('learning_rate', config.learning_rate, checks.POSITIVE)
  return {'problem': config.problem, 'start': list(problem.start),
          'steps': config.steps, 'tolerance': config.tolerance,
          'optimizers': [{'name': n, 'learning_rate': config.learning_rate,
                          'numbers': {}, 'options': {}} for n in names]}


def bind(host: str, port: int) -> socket.socket:
  """A listening socket on (host, port); port 0 picks a free one.

  Raises:
    errors.ConfigError: if the port is out of range or the address cannot
      be bound (in use, or not this machine's).
  """
  checks.number('port', port, checks.Range(0, 65535), integer=True)
  try:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)
  except OSError as e:
    raise errors.ConfigError(
        f'host={host!r}, port={port} cannot be served: {e.strerror or e}; '
        'accepted: a free port on an address of this machine (port=0 picks '
        'a free one).') from e


def url(sock: socket.socket) -> str:
  """The page's address for a bound socket."""
  host, port = sock.getsockname()[:2]
  return f'http://[{host}]:{port}/' if ':' in host else (
      f'http://{host}:{port}/')


def serve(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Serves the page until Ctrl-C; prints its URL on one line.

  Args:
    config: the web config (see configs/playground_web.py): host, port and
      the page's first settings.
    workdir: downloads from the page also save a copy here.

  Raises:
    errors.ConfigError: on a bad setting or an address that cannot be bound.
  """
  defaults = defaults_from_config(config)
  sock = bind(config.host, config.port)
  logging.getLogger('playground.web').setLevel(logging.INFO)
  # Compile the first page's program now, so its first draw is quick.
  _, timing = compute(defaults)
  print(f'Compiled the first optimizer set in {timing["compute_ms"]:.0f} ms.',
        flush=True)
  print(f'Playground at {url(sock)}  (Ctrl-C stops it)', flush=True)
  server = uvicorn.Server(uvicorn.Config(
      create_app(defaults, workdir), log_level='warning', lifespan='off'))
  try:
    server.run(sockets=[sock])
  except KeyboardInterrupt:
    # uvicorn has shut down cleanly and re-raised the Ctrl-C; nothing to add.
    pass
  finally:
    sock.close()
  print('Stopped.', flush=True)
