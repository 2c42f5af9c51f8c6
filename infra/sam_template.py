"""Read template.yaml the way SAM would, so tests and local tools use the template as the single truth.

Why our own small resolver: the drift tests, the local invoker and the end-to-end test need each function's
Handler, CodeUri, merged Globals and *resolved* environment (with !Ref/!Sub/!If evaluated against chosen
parameter values) without Docker or `sam`. cfn-lint's YAML loader understands the short intrinsic tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "graphrec",
    "AWS::URLSuffix": "amazonaws.com",
}
_NO_VALUE = object()


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse template.yaml into plain dicts; short tags (!Ref, !Sub...) become {'Ref': ...} etc."""
    from cfnlint.decode import cfn_yaml

    return _plain(cfn_yaml.load(str(path)))


def _plain(node: Any) -> Any:
    """cfn-lint returns str/dict subclasses carrying line marks; turn them into builtins."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


@dataclass
class Resolver:
    """Evaluates the intrinsic functions used in template.yaml for one set of parameter values."""

    template: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    resource_refs: dict[str, str] = field(default_factory=dict)  # logical id -> value of !Ref (name/ARN)

    def param_values(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(PSEUDO_PARAMETERS)
        for name, spec in self.template.get("Parameters", {}).items():
            if name in self.parameters:
                values[name] = self.parameters[name]
            elif "Default" in spec:
                values[name] = spec["Default"]
            if spec.get("Type") == "CommaDelimitedList" and isinstance(values.get(name), str):
                values[name] = [v.strip() for v in values[name].split(",")]
        return values

    def ref(self, name: str) -> Any:
        values = self.param_values()
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in values:
            return values[name]
        if name in self.resource_refs:
            return self.resource_refs[name]
        if name in self.template.get("Resources", {}) or name in self.template.get("Parameters", {}):
            return f"<{name}>"  # a resource, or a required parameter nobody gave a value for
        raise KeyError(f"!Ref {name}: no such parameter or resource (and no value given)")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if fn == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if fn == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if fn == "Fn::GetAtt":
                return self.get_att(arg if isinstance(arg, str) else ".".join(arg))
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
        out = {}
        for k, v in value.items():
            r = self.resolve(v)
            if r is not _NO_VALUE:
                out[k] = r
        return out

    def get_att(self, target: str) -> Any:
        """Value of `!GetAtt Resource.Attribute` (a placeholder here; subclasses make it an ARN)."""
        return f"<{target}>"

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in local:
                return str(local[name])
            if "." in name and name.split(".")[0] in self.template.get("Resources", {}):
                return str(self.get_att(name))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", repl, text)


@dataclass
class FunctionSpec:
    logical_id: str
    handler: str
    code_uri: str
    runtime: str
    memory_size: int
    timeout: int
    environment: dict[str, str]
    events: dict[str, Any]
    properties: dict[str, Any]

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def functions(
    template: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    resource_refs: dict[str, str] | None = None,
) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function with Globals merged and intrinsics resolved."""
    template = template if template is not None else load_template()
    resolver = Resolver(template, parameters or {}, resource_refs or {})
    glob = template.get("Globals", {}).get("Function", {})
    out: dict[str, FunctionSpec] = {}
    for lid, res in template.get("Resources", {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**glob, **res.get("Properties", {})}
        env = {
            **glob.get("Environment", {}).get("Variables", {}),
            **res.get("Properties", {}).get("Environment", {}).get("Variables", {}),
        }
        resolved_env = resolver.resolve(env)
        out[lid] = FunctionSpec(
            logical_id=lid,
            handler=props["Handler"],
            code_uri=props["CodeUri"],
            runtime=props["Runtime"],
            memory_size=int(props.get("MemorySize", 128)),
            timeout=int(props.get("Timeout", 3)),
            environment={k: str(v) for k, v in resolved_env.items()},
            events=res.get("Properties", {}).get("Events", {}),
            properties=props,
        )
    return out


def http_routes(template: dict[str, Any] | None = None) -> list[tuple[str, str, str, str | None]]:
    """(function logical id, METHOD, path, authorizer) for every HttpApi event."""
    template = template if template is not None else load_template()
    routes = []
    for lid, fn in functions(template).items():
        for ev in fn.events.values():
            if ev.get("Type") == "HttpApi":
                p = ev["Properties"]
                routes.append((lid, p["Method"].upper(), p["Path"], p.get("Auth", {}).get("Authorizer")))
    return routes
