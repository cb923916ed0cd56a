"""Checks readyd's HTTP answers against docs/openapi.yaml (OpenAPI 3.1).

lib.http() hands every answer from a daemon the tests started to check();
a mismatch names the request, the status, the place in the body (a JSON
path) and the place in docs/openapi.yaml (a JSON pointer into the
document), so a field the server sends but the document does not describe
is a one-line fix in either.

What is checked: the status is declared for the operation (or the
operation has `default`); the Content-Type is one the response declares;
a JSON body validates against its schema with draft 2020-12 semantics
(python3-jsonschema), formats `date-time` included. A request whose path
no operation matches must be answered 404 (405 for a known path with an
unknown method) with a body that is a Problem.

Needs python3-yaml and python3-jsonschema (scripts/install-deps). Without
them the check is skipped with one warning, except in CI (CI=true), where
that is an error.
"""
import json
import os
import re
import sys
import urllib.parse

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'docs',
                   'openapi.yaml')

try:
    import jsonschema
    import yaml
    MISSING = None
except ImportError as e:  # reported by available()
    MISSING = str(e)

# RFC 9110 reason phrases (6585 for 429 and 431, 4918 for 507): a
# problem's title is its status's.
PHRASES = {
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
    405: 'Method Not Allowed', 406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict',
    410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Content Too Large',
    414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable',
    417: 'Expectation Failed', 421: 'Misdirected Request', 422: 'Unprocessable Content',
    426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
    431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
    501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
    504: 'Gateway Timeout', 505: 'HTTP Version Not Supported', 507: 'Insufficient Storage',
}
METHODS = ('get', 'put', 'post', 'delete', 'patch', 'head', 'options')
DATE_TIME = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$')


def available():
    """True when the check can run; raises in CI when it cannot."""
    if MISSING is None:
        return True
    if os.environ.get('CI') == 'true':
        raise RuntimeError('the OpenAPI check needs python3-yaml and python3-jsonschema '
                           '(scripts/install-deps): %s' % MISSING)
    if not getattr(available, 'warned', False):
        sys.stderr.write('openapi_check: skipped, %s (scripts/install-deps)\n' % MISSING)
        available.warned = True
    return False


def pointer(*parts):
    """A JSON pointer (RFC 6901) into the document."""
    return '#/' + '/'.join(str(p).replace('~', '~0').replace('/', '~1') for p in parts)


def media_type(content_type):
    return (content_type or '').split(';', 1)[0].strip().lower()


class Spec:
    """docs/openapi.yaml, loaded once, with a matcher for its paths."""

    def __init__(self, path=DOC):
        with open(path, encoding='utf-8') as f:
            self.doc = yaml.safe_load(f)
        self.paths = []
        for template in self.doc['paths']:
            rx = re.escape(template)
            rx = re.sub(r'\\\{[^}]+\\\}', '[^/]+', rx)
            self.paths.append((template.count('{'), template, re.compile('^' + rx + '$')))
        self.paths.sort()  # literal paths before templated ones
        checker = jsonschema.FormatChecker(formats=())
        checker.checks('date-time')(lambda s: not isinstance(s, str) or bool(DATE_TIME.match(s)))
        self.format_checker = checker
        self.validators = {}

    def resolve(self, obj):
        """Follows a local $ref (responses live in components too)."""
        while isinstance(obj, dict) and '$ref' in obj and not obj['$ref'].startswith(
                '#/components/schemas/'):
            node = self.doc
            for part in obj['$ref'][2:].split('/'):
                node = node[part.replace('~1', '/').replace('~0', '~')]
            obj = node
        return obj

    def operation(self, method, path):
        """(path template or None, operation or None); HEAD is GET's."""
        for _, template, rx in self.paths:
            if rx.match(path):
                item = self.doc['paths'][template]
                op = item.get(method.lower())
                if op is None and method.upper() == 'HEAD':
                    op = item.get('get')
                return template, op
        return None, None

    def validator(self, schema_ptr, schema):
        v = self.validators.get(schema_ptr)
        if v is None:
            # The components ride along so that "#/components/schemas/X"
            # resolves inside the schema being validated.
            root = dict(schema, components=self.doc.get('components', {}))
            v = jsonschema.Draft202012Validator(root, format_checker=self.format_checker)
            self.validators[schema_ptr] = v
        return v

    def check(self, method, url, status, content_type, body):
        """A list of mismatches (strings); empty when the answer agrees."""
        parts = urllib.parse.urlsplit(url)
        path = parts.path
        what = '%s %s%s -> %d' % (method, path, '?' + parts.query if parts.query else '', status)
        template, op = self.operation(method, path)
        if op is None:
            want = 404 if template is None else 405
            if status != want:
                return ['%s: no operation in docs/openapi.yaml for %s %s (expected %d)'
                        % (what, method, path, want)]
            ptr = pointer('components', 'schemas', 'Problem')
            return self.check_body(what, ptr, {'$ref': ptr}, 'application/problem+json',
                                   content_type, body)
        responses = op.get('responses', {})
        key = str(status)
        if key not in responses:
            key = '%dXX' % (status // 100)
        if key not in responses:
            key = 'default'
        if key not in responses:
            return ['%s: status %d is not a response of %s (declared: %s)'
                    % (what, status, pointer('paths', template, method.lower(), 'responses'),
                       ', '.join(sorted(responses)))]
        resp_ptr = pointer('paths', template, method.lower(), 'responses', key)
        response = self.resolve(responses[key])
        content = response.get('content')
        if not content:
            return []
        mt = media_type(content_type)
        chosen = None
        for declared in content:
            if declared.lower().replace(' ', '') == (content_type or '').lower().replace(' ', ''):
                chosen = declared
        for declared in content:
            if chosen is None and media_type(declared) == mt:
                chosen = declared
        if chosen is None:
            return ['%s: Content-Type %r is not declared at %s/content (declared: %s)'
                    % (what, content_type, resp_ptr, ', '.join(content))]
        schema = content[chosen].get('schema')
        if method.upper() == 'HEAD':
            return []
        if 'x-events' in content[chosen]:
            return self.check_events(what, resp_ptr + '/content/' + chosen.replace('/', '~1')
                                     + '/x-events', content[chosen]['x-events'], body)
        if schema is None:
            return []
        ptr = resp_ptr + '/content/' + chosen.replace('~', '~0').replace('/', '~1') + '/schema'
        if isinstance(response, dict) and responses[key] is not response:
            ptr = responses[key]['$ref'] + '/content/' + chosen.replace('/', '~1') + '/schema'
        return self.check_body(what, ptr, schema, mt, content_type, body)

    def schema_pointer(self, ptr, schema, path):
        """The JSON pointer, into the document, of the schema keyword that
        refused: through a $ref it continues in components, so the place
        to fix is named, not the place that refers to it."""
        node, base, rel = schema, ptr, []
        for part in path:
            if part == '$ref':
                continue
            while isinstance(node, dict) and part not in node and '$ref' in node:
                base, rel = node['$ref'], []
                node = self.resolve_schema(node['$ref'])
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            rel.append(str(part).replace('~', '~0').replace('/', '~1'))
        return '/'.join([base] + rel)

    def resolve_schema(self, ref):
        node = self.doc
        for part in ref[2:].split('/'):
            node = node[part.replace('~1', '/').replace('~0', '~')]
        return node

    def check_events(self, what, ptr, schemas, body):
        """A text/event-stream: each event's name is one x-events names and
        its data (one line of JSON) validates against that schema."""
        errors = []
        text = body.decode('utf-8', 'replace') if isinstance(body, bytes) else body
        n = -1
        for block in text.split('\n\n'):
            fields = {}
            for line in block.split('\n'):
                if not line or line.startswith(':'):
                    continue  # a comment (": ping")
                key, _, value = line.partition(':')
                fields[key] = value[1:] if value.startswith(' ') else value
            if not fields:
                continue
            n += 1
            name = fields.get('event', 'message')
            if name not in schemas or name == 'description':
                errors.append('%s: event %d %r is not one of %s' % (what, n, name, ptr))
                continue
            errors += self.check_body('%s event %d (%s)' % (what, n, name),
                                      ptr + '/' + name, schemas[name], 'application/json',
                                      'application/json', fields.get('data', '').encode())
        return errors

    def check_body(self, what, ptr, schema, mt, content_type, body):
        if media_type(content_type) != mt:
            return ['%s: Content-Type %r, expected %s' % (what, content_type, mt)]
        if not (mt.endswith('/json') or mt.endswith('+json')):
            return []
        try:
            value = json.loads(body)
        except ValueError as e:
            return ['%s: body is not JSON (%s): %r' % (what, e, body[:200])]
        errors = []
        if mt == 'application/problem+json' and isinstance(value, dict):
            status = value.get('status')
            if status in PHRASES and value.get('title') != PHRASES[status]:
                errors.append('%s: problem title %r, expected the status phrase %r'
                              % (what, value.get('title'), PHRASES[status]))
        for err in sorted(self.validator(ptr, schema).iter_errors(value),
                          key=lambda e: list(e.absolute_path))[:5]:
            at = '$' + ''.join('[%d]' % p if isinstance(p, int) else '.' + p
                               for p in err.absolute_path)
            message = err.message if len(err.message) < 300 else err.message[:300] + '...'
            if err.context:  # oneOf/anyOf: say why the closest branch refused
                message += '; closest: ' + jsonschema.exceptions.best_match(err.context).message
            errors.append('%s: response body at %s: %s (schema %s)'
                          % (what, at, message,
                             self.schema_pointer(ptr, schema, err.absolute_schema_path)))
        return errors


_SPEC = None


def spec():
    global _SPEC
    if _SPEC is None:
        _SPEC = Spec()
    return _SPEC


def check(method, url, status, headers, body):
    """Mismatches of one answer, [] when it agrees or when the check is
    unavailable (outside CI)."""
    if not available():
        return []
    return spec().check(method, url, status, headers.get('Content-Type'), body)
