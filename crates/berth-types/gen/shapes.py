#!/usr/bin/env python3
"""Generates berth-types' typed shapes (src/shapes/*.rs) from the botocore models in
crates/berth-aws/models: every member of the documents Berth stores as AWS accepts them (task
definitions, overrides, service load balancers and placement, ELB actions and conditions), typed,
so every modeled field round-trips and nothing below the API is raw JSON.

    python3 crates/berth-types/gen/shapes.py          # rewrite src/shapes/*.rs
    python3 crates/berth-types/gen/shapes.py --check  # fail if they differ (a test runs this)
"""
import json, os, re, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, '..', '..', 'berth-aws', 'models')
OUT = os.path.join(HERE, '..', 'src', 'shapes')

# (model, roots): a root is (shape, rust name, members left out).
TARGETS = {
    'ecs': [
        ('RegisterTaskDefinitionRequest', 'TaskDefinitionSpec', ['family', 'tags']),
        ('TaskOverride', None, []),
        ('LoadBalancer', None, []),
        ('PlacementStrategy', None, []),
        ('PlacementConstraint', None, []),
        ('NetworkConfiguration', None, []),
        ('CapacityProviderStrategyItem', None, []),
        ('ClusterConfiguration', None, []),
        ('ClusterServiceConnectDefaultsRequest', None, []),
        ('VersionInfo', None, []),
        ('NetworkBinding', None, []),
    ],
    'elbv2': [
        ('Action', None, []),
        ('RuleCondition', None, []),
    ],
}

KEYWORDS = {'type', 'match', 'ref', 'self', 'mod', 'use', 'in', 'fn', 'impl', 'where', 'loop', 'move', 'static', 'struct', 'enum', 'trait', 'async', 'await', 'dyn', 'box', 'final', 'override', 'priv', 'virtual', 'yield', 'macro', 'crate', 'super', 'const', 'let', 'mut', 'pub', 'return', 'true', 'false', 'as', 'break', 'continue', 'else', 'extern', 'for', 'if', 'unsafe', 'while'}


def snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper():
            prev = name[i - 1] if i else ''
            nxt = name[i + 1] if i + 1 < len(name) else ''
            if i and (prev.islower() or prev.isdigit() or (prev.isupper() and nxt.islower())):
                out.append('_')
            out.append(ch.lower())
        else:
            out.append(ch)
    s = ''.join(out)
    return 'r#' + s if s in KEYWORDS else s


def camel(value):
    parts = re.split(r'[^A-Za-z0-9]+', value)
    fixed = []
    for p in parts:
        if not p:
            continue
        if p.upper() == p:
            p = p.lower()
        fixed.append(p[:1].upper() + p[1:])
    s = ''.join(fixed)
    if not s or s[0].isdigit():
        s = 'V' + s
    return s


class Gen:
    def __init__(self, model):
        self.shapes = model['shapes']
        self.done = {}
        self.order = []
        self.renames = {}

    def rust_type(self, shape_name):
        sh = self.shapes[shape_name]
        t = sh['type']
        if t == 'string':
            if 'enum' in sh:
                self.emit(shape_name)
                return self.name_of(shape_name)
            return 'String'
        if t == 'integer':
            return 'i32'
        if t == 'long':
            return 'i64'
        if t == 'boolean':
            return 'bool'
        if t in ('double', 'float'):
            return 'f64'
        if t == 'timestamp':
            return 'f64'
        if t == 'list':
            return 'Vec<%s>' % self.rust_type(sh['member']['shape'])
        if t == 'map':
            return 'BTreeMap<%s, %s>' % (self.rust_type(sh['key']['shape']), self.rust_type(sh['value']['shape']))
        if t == 'structure':
            self.emit(shape_name)
            return self.name_of(shape_name)
        raise SystemExit('unsupported shape type %s (%s)' % (t, shape_name))

    def name_of(self, shape_name):
        return self.renames.get(shape_name, shape_name)

    def emit(self, shape_name, exclude=()):
        if shape_name in self.done:
            return
        self.done[shape_name] = None
        sh = self.shapes[shape_name]
        name = self.name_of(shape_name)
        if sh['type'] == 'string':
            values = sh['enum']
            lines = ['/// The model\'s `%s`.' % shape_name,
                     '#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]',
                     'pub enum %s {' % name]
            for v in values:
                lines.append('    #[serde(rename = "%s")]' % v)
                lines.append('    %s,' % camel(v))
            lines.append('}')
            lines.append('')
            lines.append('impl %s {' % name)
            lines.append('    pub fn as_str(self) -> &\'static str {')
            lines.append('        match self {')
            for v in values:
                lines.append('            %s::%s => "%s",' % (name, camel(v), v))
            lines.append('        }')
            lines.append('    }')
            lines.append('}')
            self.done[shape_name] = '\n'.join(lines)
            self.order.append(shape_name)
            return
        required = set(sh.get('required', []))
        fields = []
        for member, ref in sorted(sh['members'].items()):
            if member in exclude:
                continue
            ty = self.rust_type(ref['shape'])
            field = snake(member)
            if member in required:
                fields.append('    #[serde(rename = "%s")]\n    pub %s: %s,' % (member, field, ty))
            else:
                fields.append('    #[serde(rename = "%s", default, skip_serializing_if = "Option::is_none")]\n    pub %s: Option<%s>,' % (member, field, ty))
        derive = 'Debug, Clone, PartialEq, Serialize, Deserialize'
        if not required:
            derive += ', Default'
        lines = ['/// The model\'s `%s`%s.' % (shape_name, ' (without %s)' % ', '.join('`%s`' % e for e in exclude) if exclude else ''),
                 '#[derive(%s)]' % derive,
                 'pub struct %s {' % name] + fields + ['}']
        self.done[shape_name] = '\n'.join(lines)
        self.order.append(shape_name)


def render(service, roots):
    model = json.load(open(os.path.join(MODELS, service + '.json')))
    g = Gen(model)
    for shape, rename, _ in roots:
        if rename:
            g.renames[shape] = rename
    for shape, _, exclude in roots:
        g.emit(shape, exclude)
    head = ('//! Generated by `crates/berth-types/gen/shapes.py` from `crates/berth-aws/models/%s.json`:\n'
            '//! do not edit. Every member as the model names it (serde renames), optional unless the\n'
            '//! model requires it, enums with exactly the model\'s values.\n\n'
            '#![allow(clippy::large_enum_variant)]\n\n'
            'use serde::{Deserialize, Serialize};\n' % service)
    body = '\n\n'.join(g.done[s] for s in g.order)
    uses_map = 'BTreeMap<' in body
    if uses_map:
        head += 'use std::collections::BTreeMap;\n'
    # As `cargo fmt` leaves it, so the check and the formatter agree.
    out = subprocess.run(['rustfmt', '--edition', '2024', '--emit', 'stdout'],
                         input=head + '\n' + body + '\n', capture_output=True, text=True, check=True)
    return out.stdout


def main():
    check = '--check' in sys.argv
    stale = []
    for service, roots in TARGETS.items():
        text = render(service, roots)
        path = os.path.join(OUT, service.replace('elbv2', 'elb') + '.rs')
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            if check:
                stale.append(path)
            else:
                os.makedirs(OUT, exist_ok=True)
                open(path, 'w').write(text)
    if stale:
        print('stale generated shapes: %s (run python3 crates/berth-types/gen/shapes.py)' % ', '.join(stale))
        sys.exit(1)


main()
