"""Faults in the web API: every bad request is a 4xx with a one-line message.

Bad bodies and queries (malformed, not an object, nested 10,000 deep, over
the size cap, missing fields, wrong types, huge or non-finite numbers,
unknown names, too many optimizers) go through Starlette's TestClient; a
real uvicorn server on 127.0.0.1 then takes a bounded mixed load. Python's
json accepts the NaN and Infinity tokens: the server lets them decode to
floats, and the field's own check refuses them by name.
"""

import concurrent.futures
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from starlette.testclient import TestClient

from configs import playground_web
from adamjax.playground import web
from conftest import serving_playground


def _settings(**overrides):
  """Small valid settings: Adam and SGD on the quadratic, 50 steps."""
  settings = {'problem': 'quadratic', 'start': [1.5, 1.0], 'steps': 50,
              'tolerance': 1e-6,
              'optimizers': [{'name': 'adam', 'learning_rate': 0.1},
                             {'name': 'sgd', 'learning_rate': 0.05}]}
  settings.update(overrides)
  return settings


def _without(key):
  """Valid settings lacking `key`."""
  settings = _settings()
  del settings[key]
  return settings


def _optimizer(**entry):
  """Valid settings whose one optimizer is `entry`."""
  return _settings(optimizers=[entry])


def _text(settings):
  """Settings as JSON text, bytes."""
  return json.dumps(settings).encode()


def _nested(depth, inner='1'):
  """`depth` nested JSON lists around `inner`."""
  return '[' * depth + inner + ']' * depth


def _assert_refused(response, status, field):
  """`status`, never a 500, and a short one-line JSON message naming field."""
  assert response.status_code == status, response.text[:300]
  error = response.json()['error']
  assert field in error, error
  assert '\n' not in error and 0 < len(error) <= web.MAX_MESSAGE


@pytest.fixture(name='client', scope='module')
def fixture_client():
  """A TestClient of the app; a server error is a 500, not an exception."""
  defaults = web.defaults_from_config(playground_web.get_config())
  return TestClient(web.create_app(defaults), raise_server_exceptions=False)


NAN = _text(_settings()).replace(b'0.1', b'NaN')

POSTS = {
    # Not JSON, or not settings.
    'malformed': (b'{not json', 400, 'not JSON'),
    'truncated': (b'{"problem": "quadratic"', 400, 'not JSON'),
    'empty': (b'', 400, 'not JSON'),
    'not utf-8': (b'\xff\xfe', 400, 'not JSON'),
    'integer of 5000 digits': (b'{"steps": ' + b'9' * 5000 + b'}', 400,
                               'not JSON'),
    'a list': (b'[]', 400, 'not a JSON object'),
    'a string': (b'"quadratic"', 400, 'not a JSON object'),
    'null': (b'null', 400, 'not a JSON object'),
    'a number': (b'3', 400, 'not a JSON object'),
    # Nesting: past Python's recursion limit, and under it in a field.
    '10,000 nested lists': (_nested(10_000).encode(), 400, 'nested too deeply'),
    '10,000 nested dicts': (('{"a":' * 10_000 + '1' + '}' * 10_000).encode(),
                            400, 'nested too deeply'),
    '900 nested lists in steps': (
        _text(_settings()).replace(b'"steps": 50',
                                   b'"steps": ' + _nested(900).encode()),
        400, 'nested too deeply'),
    # Missing fields.
    'no fields': (b'{}', 400, 'problem'),
    'no start': (_text(_without('start')), 400, 'start'),
    'no steps': (_text(_without('steps')), 400, 'steps'),
    'no tolerance': (_text(_without('tolerance')), 400, 'tolerance'),
    'no optimizers': (_text(_without('optimizers')), 400, 'optimizers'),
    'no optimizer name': (_text(_optimizer(learning_rate=0.1)), 400,
                          'optimizers[0].name'),
    'no learning rate': (_text(_optimizer(name='adam')), 400,
                         'adam learning_rate'),
    # Wrong types.
    'problem a number': (_text(_settings(problem=3)), 400, 'problem'),
    'start a string': (_text(_settings(start='center')), 400, 'start'),
    'start of 3': (_text(_settings(start=[0, 0, 0])), 400, 'start'),
    'steps a bool': (_text(_settings(steps=True)), 400, 'steps'),
    'steps a list': (_text(_settings(steps=[100])), 400, 'steps'),
    'tolerance a dict': (_text(_settings(tolerance={})), 400, 'tolerance'),
    'optimizers a string': (_text(_settings(optimizers='adam')), 400,
                            'optimizers'),
    'optimizer a string': (_text(_settings(optimizers=['adam'])), 400,
                           'optimizers[0]'),
    'name a list': (_text(_optimizer(name=['adam'], learning_rate=0.1)), 400,
                    'optimizers[0].name'),
    'numbers a list': (_text(_optimizer(name='adam', learning_rate=0.1,
                                        numbers=[1])), 400, 'adam numbers'),
    'options a string': (_text(_optimizer(name='adam', learning_rate=0.1,
                                          options='nesterov')), 400,
                         'adam options'),
    'option not a bool': (_text(_optimizer(name='adam', learning_rate=0.1,
                                           options={'amsgrad': 'yes'})), 400,
                          'amsgrad'),
    'unknown optimizer key': (_text(_optimizer(name='adam', lr=0.1)), 400,
                              'optimizers[0]'),
    # Huge step counts: refused at once, never run.
    'steps 10**9': (_text(_settings(steps=10**9)), 400, 'steps'),
    'steps 1e300': (_text(_settings(steps=1e300)), 400, 'steps'),
    'steps 10**400': (_text(_settings(steps=10**400)), 400, 'steps'),
    'steps 1e400': (_text(_settings()).replace(b'"steps": 50',
                                               b'"steps": 1e400'), 400,
                    'steps'),
    'steps 0': (_text(_settings(steps=0)), 400, 'steps'),
    'steps -1': (_text(_settings(steps=-1)), 400, 'steps'),
    # Non-finite and negative numbers.
    'learning rate NaN': (NAN, 400, 'adam learning_rate=nan'),
    'learning rate Infinity': (NAN.replace(b'NaN', b'Infinity'), 400,
                               'adam learning_rate=inf'),
    'learning rate -Infinity': (NAN.replace(b'NaN', b'-Infinity'), 400,
                                'adam learning_rate=-inf'),
    'learning rate -1': (_text(_optimizer(name='adam', learning_rate=-1)), 400,
                         'learning_rate=-1'),
    'start NaN': (_text(_settings()).replace(b'1.5', b'NaN'), 400,
                  'start x=nan'),
    'tolerance Infinity': (_text(_settings()).replace(b'1e-06', b'Infinity'),
                           400, 'tolerance=inf'),
    'b1 NaN': (_text(_optimizer(name='adam', learning_rate=0.1,
                                numbers={'b1': 'NaN'})), 400, 'b1=nan'),
    # Unknown names, and too many optimizers.
    'unknown problem': (_text(_settings(problem='banana')), 400, 'problem'),
    'unknown optimizer': (_text(_optimizer(name='adamm', learning_rate=0.1)),
                          400, 'optimizers[0].name'),
    'no optimizer': (_text(_settings(optimizers=[])), 400, 'len(optimizers)'),
    '6 optimizers': (_text(_settings(optimizers=[
        {'name': 'adam', 'learning_rate': 0.1}] * 6)), 400,
                     'len(optimizers)=6'),
    '10,000 optimizers': (_text(_settings(optimizers=[
        {'name': 'adam', 'learning_rate': 0.1}] * 10_000)), 400,
                          'len(optimizers)=10000'),
    # Size: refused before parsing.
    'body over 1 MB': (b'{"pad": "' + b'x' * web.MAX_BODY + b'"}', 413,
                       'over 1048576 bytes'),
    'long repr': (_text(_settings(steps='x' * 100_000)), 400, 'steps'),
}


@pytest.mark.parametrize('body, status, field', POSTS.values(), ids=POSTS)
def test_bad_post_is_a_4xx_with_a_one_line_message(client, body, status,
                                                   field):
  """Each bad /api/run body: its 4xx and a one-line message naming it."""
  _assert_refused(client.post('/api/run', content=body), status, field)


def test_a_chunked_body_is_capped_by_the_bytes_read(client):
  """Without a Content-Length, the bytes read are counted against the cap."""
  chunks = (b' ' * 65536 for _ in range(2 * web.MAX_BODY // 65536))
  response = client.post('/api/run', content=chunks)
  assert 'content-length' not in response.request.headers
  _assert_refused(response, 413, 'over 1048576 bytes')


def test_a_body_just_under_the_cap_is_run(client):
  """The cap is on size alone: 1 MB less a little, valid, is answered."""
  body = _text(_settings())
  padded = body[:-1] + b', "pad": "' + b'x' * (
      web.MAX_BODY - len(body) - 20) + b'"}'
  assert len(padded) <= web.MAX_BODY
  assert client.post('/api/run', content=padded).status_code == 200


# A rate past float32's range is inf in the float32 program (numpy warns).
@pytest.mark.filterwarnings('ignore:overflow encountered in cast')
@pytest.mark.parametrize('settings', [
    _optimizer(name='adam', learning_rate=1e300),
    _optimizer(name='sgd', learning_rate=1e300),
    _optimizer(name='adam', learning_rate=0.1, numbers={'eps': 1e300}),
    _settings(tolerance=1e-320),
], ids=['adam lr 1e300', 'sgd lr 1e300', 'eps 1e300', 'tolerance 1e-320'])
def test_extreme_accepted_values_answer_strict_json(client, settings):
  """Accepted extremes diverge or stall: a 200 of strict JSON, not a 500."""
  response = client.post('/api/run', content=_text(settings))
  assert response.status_code == 200
  json.loads(response.text, parse_constant=pytest.fail)  # No NaN tokens.


QUERIES = {
    'no q': (None, 400, 'q is not JSON'),
    'malformed q': ('{', 400, 'q is not JSON'),
    'q a list': ('[]', 400, 'not a JSON object'),
    'q nested 5000 deep': (_nested(5000), 400, 'q is nested too deeply'),
    'q over the cap': ('"' + 'x' * web.MAX_QUERY + '"', 413, 'q is'),
    'q steps 10**9': (json.dumps(_settings(steps=10**9)), 400, 'steps'),
    'q learning rate NaN': (NAN.decode(), 400, 'adam learning_rate=nan'),
    'q unknown problem': (json.dumps(_settings(problem='banana')), 400,
                          'problem'),
    'q 6 optimizers': (json.dumps(_settings(optimizers=[
        {'name': 'sgd', 'learning_rate': 0.1}] * 6)), 400, 'len(optimizers)'),
}


@pytest.mark.parametrize('path', ['/api/trajectories.csv', '/api/figure.png'])
@pytest.mark.parametrize('q, status, field', QUERIES.values(), ids=QUERIES)
def test_bad_query_is_a_4xx_with_a_one_line_message(client, path, q, status,
                                                    field):
  """Each bad download link: its 4xx and a one-line message naming it."""
  params = {} if q is None else {'q': q}
  _assert_refused(client.get(path, params=params), status, field)


@pytest.mark.parametrize('method, path, status, field', [
    ('GET', '/api/problem/banana', 400, 'problem'),
    ('GET', '/api/problem/' + 'x' * 5000, 400, 'problem'),
    ('GET', '/api/nowhere', 404, 'GET /api/nowhere: Not Found'),
    ('GET', '/api/run', 405, 'GET /api/run: Method Not Allowed'),
    ('POST', '/api/meta', 405, 'POST /api/meta: Method Not Allowed'),
])
def test_bad_path_or_method_is_a_4xx_with_a_one_line_message(
    client, method, path, status, field):
  """Unknown problems, paths and methods: JSON messages too."""
  _assert_refused(client.request(method, path), status, field)


# ----------------------------------------------------------------------------
# A real server under a bounded load.

REQUESTS = 200
CONCURRENCY = 16
TIMEOUT_S = 10  # Each request's and socket's; no test can hang past it.
# The slowest answer measured on a 2-core machine shared with three other
# engineers' test runs (load average 3.5 to 4.7), 8 runs: 0.085 to 0.135 s.
# About 5x the worst of those.
SLOWEST_S = 0.75


@pytest.fixture(name='server_url', scope='module')
def fixture_server_url():
  """A uvicorn server of the app in a thread of this process; its URL."""
  with serving_playground() as url:
    yield url.rstrip('/')


def _fetch(url, body=None):
  """(status, decoded JSON or None, seconds) of one request, bounded."""
  began = time.monotonic()
  request = urllib.request.Request(url, data=body, method=(
      'GET' if body is None else 'POST'))
  try:
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
      status, data = response.status, response.read()
  except urllib.error.HTTPError as e:
    status, data = e.code, e.read()
  seconds = time.monotonic() - began
  try:
    decoded = json.loads(data)
  except ValueError:
    decoded = None
  return status, decoded, seconds


# Bad requests the load mixes in: (path, body or None for a GET, status).
BAD = [
    ('/api/run', b'{not json', 400),
    ('/api/run', _nested(10_000).encode(), 400),
    ('/api/run', NAN, 400),
    ('/api/run', _text(_settings(steps=10**9)), 400),
    ('/api/run', _text(_optimizer(name='adamm', learning_rate=0.1)), 400),
    ('/api/run', _text(_settings(optimizers=[
        {'name': 'adam', 'learning_rate': 0.1}] * 6)), 400),
    ('/api/trajectories.csv?' + urllib.parse.urlencode({'q': '{'}), None, 400),
    ('/api/problem/banana', None, 400),
    ('/api/nowhere', None, 404),
]


def test_mixed_load_is_answered_in_time_and_the_server_stays_up(server_url):
  """200 requests, 16 at a time, half valid runs and half bad: all answered.

  Valid runs (Adam and SGD, 20 to 400 steps, varied rates: one compilation,
  made before the clock starts) are 200s, bad ones their 4xx, and the
  slowest answer is under SLOWEST_S = 0.75 s (~5x the slowest measured on
  this shared 2-core machine at load average ~4: 0.135 s, with all 200
  answered in 0.65 to 0.92 s). The server answers afterwards.
  """
  status, _, _ = _fetch(server_url + '/api/run', _text(_settings()))
  assert status == 200  # Compiles Adam + SGD on the quadratic.
  jobs = []
  for i in range(REQUESTS):
    if i % 2:
      path, body, expected = BAD[(i // 2) % len(BAD)]
    else:
      path, expected = '/api/run', 200
      body = _text(_settings(steps=20 + (i * 37) % 381, optimizers=[
          {'name': 'adam', 'learning_rate': 0.01 * (1 + i % 10)},
          {'name': 'sgd', 'learning_rate': 0.001 * (1 + i % 7)}]))
    jobs.append((server_url + path, body, expected))
  began = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
    answers = list(pool.map(lambda job: _fetch(*job[:2]), jobs))
  wall = time.monotonic() - began
  assert len(answers) == REQUESTS
  for (url, _, expected), (status, decoded, _) in zip(jobs, answers,
                                                      strict=True):
    assert status == expected, (url, status, decoded)
    if expected == 200:
      assert len(decoded['runs']) == 2
    else:
      assert '\n' not in decoded['error']
  slowest = max(seconds for _, _, seconds in answers)
  print(f'{REQUESTS} requests, {CONCURRENCY} at a time: {wall:.2f} s, '
        f'slowest {slowest:.3f} s')
  assert slowest < SLOWEST_S
  status, meta, _ = _fetch(server_url + '/api/meta')
  assert status == 200 and meta['limits']['steps'] == web.MAX_STEPS


def test_a_huge_content_length_is_refused_before_the_body(server_url):
  """Headers saying 1 GB get a 413 at once; the server waits for no body."""
  host, port = urllib.parse.urlsplit(server_url).netloc.split(':')
  with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as conn:
    conn.sendall(b'POST /api/run HTTP/1.1\r\nHost: x\r\n'
                 b'Content-Type: application/json\r\n'
                 b'Content-Length: 1000000000\r\n\r\n')
    head = conn.recv(65536).decode('latin-1')
  assert head.startswith('HTTP/1.1 413'), head
  assert 'over 1048576 bytes' in head
  assert _fetch(server_url + '/api/meta')[0] == 200


def test_a_chunked_body_is_refused_once_past_the_cap(server_url):
  """A chunked body (no Content-Length) gets its 413 as the read passes 1 MB.

  The body never ends (no last chunk): only counting the bytes read answers.
  """
  host, port = urllib.parse.urlsplit(server_url).netloc.split(':')
  chunk = b'%x\r\n%s\r\n' % (65536, b' ' * 65536)
  with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as conn:
    conn.sendall(b'POST /api/run HTTP/1.1\r\nHost: x\r\n'
                 b'Transfer-Encoding: chunked\r\n\r\n')
    for _ in range(web.MAX_BODY // 65536 + 1):
      conn.sendall(chunk)
    head = conn.recv(65536).decode('latin-1')
  assert head.startswith('HTTP/1.1 413'), head
  assert 'over 1048576 bytes' in head
