#!/usr/bin/env python3
"""Generate crates/api/src/protobuf/schema.rs, the message table of the protobuf decoder.

Usage (from the repository root):

    python3 scripts/gen-protobuf-schema.py            # writes crates/api/src/protobuf/schema.rs
    python3 scripts/gen-protobuf-schema.py --check    # exits 1 if the file is out of date

Inputs, all read from the cargo registry ($CARGO_HOME, default ~/.cargo):

* k8s-pb 0.9.0 (prost-generated from the Kubernetes generated.proto files): message names,
  field tag numbers, wire types, and the message type of nested/repeated/map fields;
* k8s-openapi 0.29.0 (src/v1_33, falling back to newer version modules for fields added
  after 1.33): the JSON name of every field (its `Deserialize` impls map `"volumeID" =>
  Field::Key_volume_id`) and whether the field is required (a non-`Option` Rust type);
* crates/api/src/codec.rs: the built-in kinds (the `typed_kinds!` table), which are the
  roots of the table together with EXTRA_ROOTS below.

Both crates name fields with the same snake_case Rust identifiers (up to underscores and
keywords: `pod_cid_rs` / `pod_cidrs`, `r#type` / `type_`), and their type names differ only
in case (AwsElasticBlockStoreVolumeSource vs AWSElasticBlockStoreVolumeSource) at the same
module paths, which is how the two are joined. A message field with no JSON name whose own
fields are all members of the enclosing k8s-openapi type is a Go struct embedded with
`json:",inline"` (Volume.volumeSource, Probe.handler, ConfigMapKeySelector's
LocalObjectReference, ...) and is marked `inline`.

The one thing neither crate records is whether a Go field is a pointer, which decides whether
a zero value on the wire is meaningful (see the empty-value rule in protobuf/mod.rs). That
knowledge is the ZERO_IS_VALUE / ZERO_IS_UNSET tables at the end of this file: see their
comment for how they were derived and how to re-derive them.

Output: one `Message` per reachable message (name, `Special` kind, fields sorted by tag) and
the sorted (apiVersion, kind) -> message roots. Anything the script cannot map is printed as a
warning on stderr; a clean run prints none.
"""

import argparse
import collections
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "crates/api/src/protobuf/schema.rs")
CODEC = os.path.join(ROOT, "crates/api/src/codec.rs")

PB_CRATE = "k8s-pb-0.9.0"
OPENAPI_CRATE = "k8s-openapi-0.29.0"
# JSON names come from the first of these version modules that knows the type/field.
OPENAPI_VERSIONS = ["v1_33", "v1_34", "v1_35", "v1_36", "v1_37"]

# Kinds that are not stored objects (so not in codec.rs) but are POSTed by kubectl in protobuf.
EXTRA_ROOTS = [
    ("authentication.k8s.io", "v1", "TokenRequest"),
    ("authentication.k8s.io", "v1", "SelfSubjectReview"),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"),  # `kubectl auth can-i --list`
]

# Messages whose JSON form is not an object with one member per field. The decoder handles
# each of these by its `Special` variant. Keyed by (k8s-pb module path, message name).
SPECIALS = {
    ("apimachinery/pkg/apis/meta/v1", "Time"): "Time",
    ("apimachinery/pkg/apis/meta/v1", "MicroTime"): "MicroTime",
    ("apimachinery/pkg/apis/meta/v1", "Duration"): "Duration",
    ("apimachinery/pkg/apis/meta/v1", "FieldsV1"): "RawJson",
    ("apimachinery/pkg/runtime", "RawExtension"): "RawJson",
    ("apimachinery/pkg/api/resource", "Quantity"): "Quantity",
    ("apimachinery/pkg/util/intstr", "IntOrString"): "IntOrString",
    ("apiextensions_apiserver/pkg/apis/apiextensions/v1", "Json"): "RawJson",
    ("apiextensions_apiserver/pkg/apis/apiextensions/v1", "JsonSchemaPropsOrBool"): "SchemaOrBool",
    ("apiextensions_apiserver/pkg/apis/apiextensions/v1", "JsonSchemaPropsOrArray"): "SchemaOrArray",
    ("apiextensions_apiserver/pkg/apis/apiextensions/v1", "JsonSchemaPropsOrStringArray"): "SchemaOrStringArray",
    # Go `type ExtraValue []string`: a message with `repeated string items = 1` on the wire,
    # a bare array of strings in JSON.
    ("api/authentication/v1", "ExtraValue"): "StringList",
    ("api/authorization/v1", "ExtraValue"): "StringList",
    ("api/certificates/v1", "ExtraValue"): "StringList",
}
# Specials that still need their fields in the table (the decoder reads them generically).
SPECIALS_WITH_FIELDS = {"SchemaOrBool", "SchemaOrArray", "SchemaOrStringArray", "StringList"}

SCALARS = {
    "string": "Str",
    "bytes": "Bytes",
    "int32": "I32",
    "int64": "I64",
    "bool": "Bool",
    "double": "F64",
}


def registry_dir(crate):
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(cargo_home, "registry/src/*", crate)))
    if not found:
        sys.exit(f"{crate} not found under {cargo_home}/registry/src (run `cargo fetch` first)")
    return found[0]


# ---------------------------------------------------------------------------------------------
# k8s-pb

PbField = collections.namedtuple("PbField", "rust tag kind card msg")
# kind: a SCALARS key or "message"; card: "one" | "many" | "map"; msg: (module, name) or None.

ATTR_RE = re.compile(r"#\[prost\((.*)\)\]\s*$")
DECL_RE = re.compile(r"pub (r#)?(\w+):\s*(.*),\s*$", re.S)
PATH_RE = re.compile(r"((?:super::)*)((?:\w+::)*)(\w+)>*$")


def resolve_type(module, ty):
    """The (module, name) of the message in a field's Rust type, relative to `module`."""
    ty = ty.replace(" ", "").replace("\n", "").rstrip(",")
    ty = re.sub(r",>", ">", ty)
    for wrapper in (
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,",
    ):
        ty = ty.replace(wrapper, "")
    m = PATH_RE.fullmatch(ty)
    if not m:
        raise SystemExit(f"cannot resolve type {ty!r} in {module}")
    ups = m.group(1).count("super::")
    parts = module.split("/")
    if ups:
        parts = parts[: len(parts) - ups]
    rest = [p for p in m.group(2).split("::") if p]
    return ("/".join(parts + rest), m.group(3))


def parse_pb_attr(attr):
    """(card, kind, tag) from the inside of #[prost(...)]; a map's kind is its value's."""
    tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
    m = re.match(r'btree_map\s*=\s*"string,\s*(\w+)"', attr)
    if m:
        return ("map", m.group(1), tag)
    first = attr.split(",")[0].strip()
    kind = "bytes" if first.startswith("bytes") else first
    if kind not in SCALARS and kind != "message":
        raise SystemExit(f"unsupported prost attribute {attr!r}")
    card = "many" if re.search(r",\s*repeated\s*,", attr) else "one"
    return (card, kind, tag)


def parse_pb(pb_dir):
    """{(module, message): [PbField]} for every message of the crate."""
    messages = {}
    src = os.path.join(pb_dir, "src")
    for path in sorted(glob.glob(os.path.join(src, "**/mod.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), src).replace(os.sep, "/")
        lines = open(path, encoding="utf-8").read().split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"pub struct (\w+) \{(\})?$", lines[i])
            if not m:
                i += 1
                continue
            if m.group(2):
                messages[(module, m.group(1))] = []
                i += 1
                continue
            name, fields = m.group(1), []
            i += 1
            while lines[i] != "}":
                am = ATTR_RE.match(lines[i].strip())
                if am:
                    decl = lines[i + 1].strip()
                    j = i + 1
                    while not decl.endswith(",") or decl.count("<") != decl.count(">"):
                        j += 1
                        decl += " " + lines[j].strip()
                    dm = DECL_RE.match(decl)
                    if not dm:
                        raise SystemExit(f"cannot parse field {decl!r} of {module}::{name}")
                    card, kind, tag = parse_pb_attr(am.group(1))
                    msg = resolve_type(module, dm.group(3)) if kind == "message" else None
                    fields.append(PbField(dm.group(2), tag, kind, card, msg))
                    i = j
                i += 1
            messages[(module, name)] = fields
            i += 1
    return messages


# ---------------------------------------------------------------------------------------------
# k8s-openapi

OaType = collections.namedtuple("OaType", "name json required")
# json: {rust field: JSON name}; required: {rust field: bool}


def parse_openapi(oa_dir, version):
    """{(module, lowercased type name): OaType} for one version module."""
    types = {}
    base = os.path.join(oa_dir, "src", version)
    for path in sorted(glob.glob(os.path.join(base, "**/*.rs"), recursive=True)):
        if os.path.basename(path) == "mod.rs":
            continue
        text = open(path, encoding="utf-8").read()
        module = os.path.relpath(os.path.dirname(path), base).replace(os.sep, "/")
        sm = re.search(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.M | re.S)
        if not sm:
            continue
        name = sm.group(1)
        required = {}
        for fm in re.finditer(r"^    pub (\w+): (.*),$", sm.group(2), re.M):
            required[fm.group(1)] = not fm.group(2).startswith("Option<")
        json = {}
        for fm in re.finditer(r'^\s*"([^"]+)" => Field::Key_(\w+),$', text, re.M):
            json[fm.group(2)] = fm.group(1)
        types[(module, name.lower())] = OaType(name, json, required)
    return types


# ---------------------------------------------------------------------------------------------
# roots


def group_module(group, version):
    if group == "":
        return f"api/core/{version}"
    if group == "apiextensions.k8s.io":
        return f"apiextensions_apiserver/pkg/apis/apiextensions/{version}"
    return f"api/{group.split('.')[0]}/{version}"


def roots():
    text = open(CODEC, encoding="utf-8").read()
    body = re.search(r"typed_kinds! \{(.*?)\n\}", text, re.S).group(1)
    kinds = re.findall(r'\("([^"]*)", "([^"]*)", "([^"]*)",', body)
    if not kinds:
        raise SystemExit("no typed_kinds! entries found in codec.rs")
    return kinds + EXTRA_ROOTS


# ---------------------------------------------------------------------------------------------
# table


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def camel(rust):
    head, *rest = rust.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# k8s-pb field names that do not normalize to the k8s-openapi one.
RUST_ALIASES = {
    ("apiextensions_apiserver/pkg/apis/apiextensions/v1", "JsonSchemaProps", "ref"): "ref_path",
}


def norm(rust):
    """Join key for Rust field names: k8s-pb writes `pod_cid_rs`, `r#type`, `a_pi_group`
    where k8s-openapi writes `pod_cidrs`, `type_`, `api_group`."""
    return rust.replace("r#", "").replace("_", "").lower()


class Names:
    """JSON names and required-ness of a message's fields, from k8s-openapi."""

    def __init__(self, openapis):
        self.openapis = openapis

    def types(self, module, name):
        return [t for t in (o.get((module, name.lower())) for o in self.openapis) if t]

    def lookup(self, types, module, name, rust):
        want = norm(RUST_ALIASES.get((module, name, rust), rust))
        for t in types:
            for r, json in t.json.items():
                if norm(r) == want:
                    return json, t.required.get(r, False)
        return None


def build(pb, openapis):
    names = Names(openapis)
    order, index = [], {}
    queue = collections.deque()
    # A message without a k8s-openapi type of its own that a parent inlines (Go `json:",inline"`):
    # its JSON names are the parent's.
    inlined_into = {}

    def visit(key):
        if key not in index:
            if key not in pb:
                raise SystemExit(f"message {key} not found in k8s-pb")
            index[key] = len(order)
            order.append(key)
            queue.append(key)
        return index[key]

    root_rows = []
    for group, version, kind in roots():
        key = (group_module(group, version), kind)
        api_version = f"{group}/{version}" if group else version
        root_rows.append((api_version, kind, visit(key)))

    warnings = []
    rows = {}
    used = set()
    while queue:
        key = queue.popleft()
        module, name = key
        special = SPECIALS.get(key)
        if special and special not in SPECIALS_WITH_FIELDS:
            rows[key] = (special, [])
            continue
        types = names.types(module, name)
        if not types and key in inlined_into:
            types = names.types(*inlined_into[key])
        if not types and pb[key] and not special:
            warnings.append(f"{module}.{name}: no k8s-openapi type")
        fields = []
        for f in sorted(pb[key], key=lambda f: f.tag):
            ty = f"Msg({visit(f.msg)})" if f.kind == "message" else SCALARS[f.kind]
            if special:
                # Read by tag by the special decoder; the name is informative only.
                fields.append((f.tag, camel(f.rust), ty, f.card, False))
                continue
            found = names.lookup(types, module, name, f.rust)
            if found is None and f.kind == "message" and f.card == "one":
                child = pb[f.msg]
                if child and all(names.lookup(types, module, name, c.rust) for c in child):
                    # Inlined struct: its fields are members of this object in JSON.
                    if not names.types(*f.msg):
                        inlined_into.setdefault(f.msg, key)
                    fields.append((f.tag, camel(f.rust), ty, "inline", False))
                    continue
            if found is None:
                json, required = camel(f.rust), False
                warnings.append(f"{module}.{name}.{f.rust}: no JSON name in k8s-openapi, using {json!r}")
            else:
                json, required = found
            keep = json in ZERO_IS_VALUE.get(f"{module}.{name}", "").split() or (
                required and json not in ZERO_IS_UNSET.get(f"{module}.{name}", "").split()
            )
            used.add((f"{module}.{name}", json))
            fields.append((f.tag, json, ty, f.card, keep and ty in SCALARS.values()))
        rows[key] = (special, fields)
    if len(order) > 0xFFFF:
        raise SystemExit("more messages than a u16 index can address")
    for table in (ZERO_IS_VALUE, ZERO_IS_UNSET):
        for message, jsons in table.items():
            for json in jsons.split():
                if (message, json) not in used:
                    warnings.append(f"zero-value entry {message}.{json} matches no field")
    return order, rows, root_rows, warnings


def render(order, rows, root_rows):
    out = []
    w = out.append
    w("// @generated by scripts/gen-protobuf-schema.py from the k8s-pb 0.9.0 and k8s-openapi 0.29.0")
    w("// sources in the cargo registry and the kinds of crates/api/src/codec.rs. Do not edit by hand;")
    w("// regenerate with `python3 scripts/gen-protobuf-schema.py` (`--check` verifies it is current).")
    w("")
    w("use super::Special::*;")
    w("use super::Ty::*;")
    w("use super::{Message, inline, keep, many, map, one};")
    w("")
    nfields = sum(len(rows[k][1]) for k in order)
    w(f"/// {len(order)} messages, {nfields} fields.")
    w("pub(super) static MESSAGES: &[Message] = &[")
    for i, key in enumerate(order):
        module, name = key
        special, fields = rows[key]
        w(f"    // {i}: {module}.{name}")
        if not fields:
            w(f"    Message {{ name: {rust_str(name)}, special: {special or 'Plain'}, fields: &[] }},")
            continue
        w(f"    Message {{ name: {rust_str(name)}, special: {special or 'Plain'}, fields: &[")
        for tag, json, ty, card, keep in fields:
            ctor = {"one": "keep" if keep else "one", "many": "many", "map": "map", "inline": "inline"}[card]
            w(f"        {ctor}({tag}, {rust_str(json)}, {ty}),")
        w("    ] },")
    w("];")
    w("")
    w("/// (apiVersion, kind, index into MESSAGES) of every kind the decoder accepts.")
    w("pub(super) static ROOTS: &[(&str, &str, u16)] = &[")
    for api_version, kind, idx in sorted(root_rows):
        w(f"    ({rust_str(api_version)}, {rust_str(kind)}, {idx}),")
    w("];")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# --derive-zero-values: recompute ZERO_IS_VALUE / ZERO_IS_UNSET from the Go types


def parse_go_structs(dirs):
    """{(k8s-pb module, lowercased type): {tag: (pointer, omitempty)}} from Go sources.

    `dirs` are checkouts of k8s.io/api, k8s.io/apimachinery and k8s.io/apiextensions-apiserver
    at the Kubernetes version k8s-pb was generated from (recognized by their go.mod)."""
    prefixes = {
        "k8s.io/api": ("", "api/"),
        "k8s.io/apimachinery": ("pkg/", "apimachinery/pkg/"),
        "k8s.io/apiextensions-apiserver": ("pkg/apis/", "apiextensions_apiserver/pkg/apis/"),
    }
    structs = {}
    for top in dirs:
        gomod = re.search(r"^module (\S+)", open(os.path.join(top, "go.mod"), encoding="utf-8").read(), re.M)
        gomod = gomod and gomod.group(1)
        if gomod not in prefixes:
            sys.exit(f"{top}: unexpected module {gomod}")
        prefix, modprefix = prefixes[gomod]
        for dirpath, _, files in os.walk(top):
            rel = os.path.relpath(dirpath, top).replace(os.sep, "/")
            if not (rel + "/").startswith(prefix):
                continue
            module = modprefix + rel[len(prefix) :]
            for fname in files:
                if not fname.endswith(".go") or fname.endswith("_test.go") or fname.startswith(("zz_", "generated")):
                    continue
                src = open(os.path.join(dirpath, fname), encoding="utf-8").read()
                for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", src, re.M | re.S):
                    fields = {}
                    for line in m.group(2).split("\n"):
                        fm = re.match(r"\s*(?:\w+\s+)?(\S+)\s+`(.*)`", line)
                        pm = fm and re.search(r'protobuf:"\w+,(\d+),', fm.group(2))
                        if not pm:
                            continue
                        jm = re.search(r'json:"([^"]*)"', fm.group(2))
                        omit = "omitempty" in (jm.group(1) if jm else "").split(",")[1:]
                        fields[int(pm.group(1))] = (fm.group(1).startswith("*"), omit)
                    structs[(module, m.group(1).lower())] = fields
    return structs


def derive_zero_values(order, rows, go):
    """Print ZERO_IS_VALUE and ZERO_IS_UNSET for the current table, from the Go types."""
    value, unset = collections.defaultdict(list), collections.defaultdict(list)
    for key in order:
        special, fields = rows[key]
        if special:
            continue
        gostruct = go.get((key[0], key[1].lower()))
        if gostruct is None:
            print(f"warning: no Go struct for {key}", file=sys.stderr)
            continue
        for tag, json, ty, card, keep in fields:
            if card != "one" or ty not in SCALARS.values():
                continue
            if tag not in gostruct:
                print(f"warning: no Go field for {key}.{json}", file=sys.stderr)
                continue
            pointer, omitempty = gostruct[tag]
            # Go writes a zero into JSON for pointers and for fields without omitempty.
            go_keeps = pointer or not omitempty
            if go_keeps and not keep:
                value[f"{key[0]}.{key[1]}"].append(json)
            elif keep and not go_keeps:
                unset[f"{key[0]}.{key[1]}"].append(json)
    for title, table in (("ZERO_IS_VALUE", value), ("ZERO_IS_UNSET", unset)):
        print(f"{title} = {{")
        for k in sorted(table):
            print(f'    "{k}": "{" ".join(table[k])}",')
        print("}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the output is out of date")
    ap.add_argument("--output", default=OUTPUT)
    ap.add_argument(
        "--derive-zero-values",
        nargs=3,
        metavar=("K8S_API", "APIMACHINERY", "APIEXTENSIONS_APISERVER"),
        help="print ZERO_IS_VALUE and ZERO_IS_UNSET computed from checkouts of the Go modules",
    )
    args = ap.parse_args()

    pb = parse_pb(registry_dir(PB_CRATE))
    oa_dir = registry_dir(OPENAPI_CRATE)
    openapis = [parse_openapi(oa_dir, v) for v in OPENAPI_VERSIONS]
    if args.derive_zero_values:
        global ZERO_IS_VALUE, ZERO_IS_UNSET
        ZERO_IS_VALUE, ZERO_IS_UNSET = {}, {}
        order, rows, _, _ = build(pb, openapis)
        derive_zero_values(order, rows, parse_go_structs(args.derive_zero_values))
        return
    order, rows, root_rows, warnings = build(pb, openapis)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = render(order, rows, root_rows)
    if args.check:
        current = open(args.output, encoding="utf-8").read() if os.path.exists(args.output) else ""
        if current != text:
            sys.exit(f"{os.path.relpath(args.output, ROOT)} is out of date: run scripts/gen-protobuf-schema.py")
        return
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    nfields = sum(len(rows[k][1]) for k in order)
    print(f"wrote {os.path.relpath(args.output, ROOT)}: {len(order)} messages, {nfields} fields, {len(root_rows)} kinds")


# ---------------------------------------------------------------------------------------------
# Which zero values on the wire are values. Go's protobuf marshaller writes every non-pointer
# field, zero or not, and a pointer field whenever it is set, while its JSON marshaller drops a
# zero non-pointer field tagged `omitempty` and keeps a zero pointer field. So a zero scalar read
# from the wire is written into the JSON exactly when Go would have kept it: when the Go field
# is a pointer (`replicas *int32`, `runAsUser *int64`, `automountServiceAccountToken *bool`,
# `storageClassName *string`) or has no `omitempty` (`containers[].name`, `status.token`).
#
# By default a field keeps its zero when k8s-openapi marks it required (non-`Option`), and
# drops it otherwise. ZERO_IS_VALUE lists the optional scalar fields whose zero Go keeps anyway
# (pointers, and a few non-pointers without omitempty); ZERO_IS_UNSET lists the required fields
# whose zero Go drops (non-pointers with omitempty). Keys are "<k8s-pb module>.<message>",
# values the JSON names of the fields.
#
# Derived from the Go types of k8s.io/api, k8s.io/apimachinery and
# k8s.io/apiextensions-apiserver v0.35.0 (the Kubernetes version k8s-pb 0.9 was generated
# from) with:
#
#     python3 scripts/gen-protobuf-schema.py --derive-zero-values \
#         path/to/k8s.io/api path/to/k8s.io/apimachinery path/to/k8s.io/apiextensions-apiserver
#
# which prints both tables for the current k8s-pb; run it again when k8s-pb is upgraded.
ZERO_IS_VALUE = {
    "api/apps/v1.DaemonSetSpec": "revisionHistoryLimit",
    "api/apps/v1.DaemonSetStatus": "collisionCount",
    "api/apps/v1.DeploymentSpec": "replicas revisionHistoryLimit progressDeadlineSeconds",
    "api/apps/v1.DeploymentStatus": "collisionCount terminatingReplicas",
    "api/apps/v1.ReplicaSetSpec": "replicas",
    "api/apps/v1.ReplicaSetStatus": "terminatingReplicas",
    "api/apps/v1.RollingUpdateStatefulSetStrategy": "partition",
    "api/apps/v1.StatefulSetOrdinals": "start",
    "api/apps/v1.StatefulSetSpec": "replicas serviceName revisionHistoryLimit",
    "api/apps/v1.StatefulSetStatus": "collisionCount availableReplicas",
    "api/authentication/v1.TokenRequestSpec": "expirationSeconds",
    "api/autoscaling/v1.HorizontalPodAutoscalerSpec": "minReplicas targetCPUUtilizationPercentage",
    "api/autoscaling/v1.HorizontalPodAutoscalerStatus": "observedGeneration currentCPUUtilizationPercentage",
    "api/autoscaling/v2.HorizontalPodAutoscalerSpec": "minReplicas",
    "api/autoscaling/v2.HorizontalPodAutoscalerStatus": "observedGeneration",
    "api/autoscaling/v2.HpaScalingRules": "selectPolicy stabilizationWindowSeconds",
    "api/autoscaling/v2.MetricTarget": "averageUtilization",
    "api/autoscaling/v2.MetricValueStatus": "averageUtilization",
    "api/batch/v1.CronJobSpec": "startingDeadlineSeconds suspend successfulJobsHistoryLimit failedJobsHistoryLimit timeZone",
    "api/batch/v1.JobSpec": "parallelism completions activeDeadlineSeconds manualSelector backoffLimit ttlSecondsAfterFinished completionMode suspend backoffLimitPerIndex maxFailedIndexes podReplacementPolicy managedBy",
    "api/batch/v1.JobStatus": "ready failedIndexes terminating",
    "api/batch/v1.PodFailurePolicyOnExitCodesRequirement": "containerName",
    "api/batch/v1.SuccessPolicyRule": "succeededIndexes succeededCount",
    "api/coordination/v1.LeaseSpec": "holderIdentity leaseDurationSeconds leaseTransitions strategy preferredHolder",
    "api/core/v1.AppArmorProfile": "localhostProfile",
    "api/core/v1.AzureDiskVolumeSource": "cachingMode fsType readOnly kind",
    "api/core/v1.AzureFilePersistentVolumeSource": "secretNamespace",
    "api/core/v1.CSIVolumeSource": "readOnly fsType",
    "api/core/v1.ClientIpConfig": "timeoutSeconds",
    "api/core/v1.ClusterTrustBundleProjection": "name signerName optional",
    "api/core/v1.ConfigMap": "immutable",
    "api/core/v1.ConfigMapEnvSource": "optional",
    "api/core/v1.ConfigMapKeySelector": "optional",
    "api/core/v1.ConfigMapProjection": "optional",
    "api/core/v1.ConfigMapVolumeSource": "defaultMode optional",
    "api/core/v1.Container": "restartPolicy",
    "api/core/v1.ContainerStatus": "started stopSignal",
    "api/core/v1.DownwardAPIVolumeFile": "mode",
    "api/core/v1.DownwardAPIVolumeSource": "defaultMode",
    "api/core/v1.EndpointAddress": "nodeName",
    "api/core/v1.EndpointPort": "appProtocol",
    "api/core/v1.EphemeralContainerCommon": "restartPolicy",
    "api/core/v1.Event": "reportingComponent reportingInstance",
    "api/core/v1.FcVolumeSource": "lun",
    "api/core/v1.FileKeySelector": "optional",
    "api/core/v1.GlusterfsPersistentVolumeSource": "endpointsNamespace",
    "api/core/v1.GrpcAction": "service",
    "api/core/v1.HostPathVolumeSource": "type",
    "api/core/v1.IscsiPersistentVolumeSource": "initiatorName",
    "api/core/v1.IscsiVolumeSource": "initiatorName",
    "api/core/v1.KeyToPath": "mode",
    "api/core/v1.Lifecycle": "stopSignal",
    "api/core/v1.LoadBalancerIngress": "ipMode",
    "api/core/v1.LocalVolumeSource": "fsType",
    "api/core/v1.NodeFeatures": "supplementalGroupsPolicy",
    "api/core/v1.NodeRuntimeHandler": "name",
    "api/core/v1.NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts userNamespaces",
    "api/core/v1.NodeSwapStatus": "capacity",
    "api/core/v1.PersistentVolumeClaimSpec": "storageClassName volumeMode volumeAttributesClassName",
    "api/core/v1.PersistentVolumeClaimStatus": "currentVolumeAttributesClassName",
    "api/core/v1.PersistentVolumeSpec": "volumeMode volumeAttributesClassName",
    "api/core/v1.PodCertificateProjection": "maxExpirationSeconds",
    "api/core/v1.PodDnsConfigOption": "value",
    "api/core/v1.PodResourceClaim": "resourceClaimName resourceClaimTemplateName",
    "api/core/v1.PodResourceClaimStatus": "resourceClaimName",
    "api/core/v1.PodSecurityContext": "runAsUser runAsNonRoot fsGroup runAsGroup fsGroupChangePolicy supplementalGroupsPolicy seLinuxChangePolicy",
    "api/core/v1.PodSpec": "terminationGracePeriodSeconds activeDeadlineSeconds automountServiceAccountToken priority shareProcessNamespace runtimeClassName enableServiceLinks preemptionPolicy setHostnameAsFQDN hostUsers hostnameOverride",
    "api/core/v1.PortStatus": "error",
    "api/core/v1.Probe": "terminationGracePeriodSeconds",
    "api/core/v1.ProjectedVolumeSource": "defaultMode",
    "api/core/v1.SeccompProfile": "localhostProfile",
    "api/core/v1.Secret": "immutable",
    "api/core/v1.SecretEnvSource": "optional",
    "api/core/v1.SecretKeySelector": "optional",
    "api/core/v1.SecretProjection": "optional",
    "api/core/v1.SecretVolumeSource": "defaultMode optional",
    "api/core/v1.SecurityContext": "privileged runAsUser runAsNonRoot readOnlyRootFilesystem allowPrivilegeEscalation runAsGroup procMount",
    "api/core/v1.ServiceAccount": "automountServiceAccountToken",
    "api/core/v1.ServiceAccountTokenProjection": "expirationSeconds",
    "api/core/v1.ServicePort": "appProtocol",
    "api/core/v1.ServiceSpec": "ipFamilyPolicy allocateLoadBalancerNodePorts loadBalancerClass internalTrafficPolicy trafficDistribution",
    "api/core/v1.Toleration": "tolerationSeconds",
    "api/core/v1.TopologySpreadConstraint": "minDomains nodeAffinityPolicy nodeTaintsPolicy",
    "api/core/v1.TypedLocalObjectReference": "apiGroup",
    "api/core/v1.TypedObjectReference": "apiGroup namespace",
    "api/core/v1.VolumeMount": "mountPropagation recursiveReadOnly",
    "api/core/v1.VolumeMountStatus": "recursiveReadOnly",
    "api/core/v1.WindowsSecurityContextOptions": "gmsaCredentialSpecName gmsaCredentialSpec runAsUserName hostProcess",
    "api/discovery/v1.Endpoint": "hostname nodeName zone",
    "api/discovery/v1.EndpointConditions": "ready serving terminating",
    "api/discovery/v1.EndpointPort": "name protocol port appProtocol",
    "api/networking/v1.IngressClassParametersReference": "apiGroup scope namespace",
    "api/networking/v1.IngressPortStatus": "error",
    "api/networking/v1.IngressSpec": "ingressClassName",
    "api/networking/v1.NetworkPolicyPort": "protocol endPort",
    "api/policy/v1.PodDisruptionBudgetSpec": "unhealthyPodEvictionPolicy",
    "api/scheduling/v1.PriorityClass": "preemptionPolicy",
    "api/storage/v1.StorageClass": "reclaimPolicy allowVolumeExpansion volumeBindingMode",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.CustomResourceDefinitionVersion": "deprecationWarning",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.CustomResourceSubresourceScale": "labelSelectorPath",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.JsonSchemaProps": "$ref maximum minimum maxLength minLength maxItems minItems multipleOf maxProperties minProperties x-kubernetes-preserve-unknown-fields x-kubernetes-list-type x-kubernetes-map-type",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.ServiceReference": "path port",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.ValidationRule": "reason optionalOldSelf",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.WebhookClientConfig": "url",
    "apimachinery/pkg/apis/meta/v1.DeleteOptions": "gracePeriodSeconds orphanDependents propagationPolicy ignoreStoreReadErrorWithClusterBreakingPotential",
    "apimachinery/pkg/apis/meta/v1.ObjectMeta": "deletionGracePeriodSeconds",
    "apimachinery/pkg/apis/meta/v1.OwnerReference": "controller blockOwnerDeletion",
    "apimachinery/pkg/apis/meta/v1.Preconditions": "uid resourceVersion",
}

ZERO_IS_UNSET = {
    "api/core/v1.ContainerRestartRule": "action",
    "api/core/v1.ContainerRestartRuleOnExitCodes": "operator",
    "api/core/v1.LocalObjectReference": "name",
    "api/core/v1.PodCertificateProjection": "signerName keyType",
}

if __name__ == "__main__":
    main()
