"""Where a Serve app's code calls a DeploymentHandle, and whether each call has a timeout.

Read with ``ast``, never imported.  A *handle* is an attribute ``self.X`` that a
deployment class sets from a constructor parameter annotated ``DeploymentHandle``
(what Serve passes for a ``.bind()`` argument), from ``serve.get_deployment_handle``
or ``serve.get_app_handle``, or -- assumed, and said so -- from an unannotated
constructor parameter of a ``@serve.deployment`` class whose attribute is then
called with ``.remote()``.  A call has a timeout when it sits inside
``asyncio.wait_for(..., timeout)`` (or ``wait_for`` imported from it), inside
``async with asyncio.timeout(...)`` (also ``timeout_at``, anyio's
``fail_after``), or when its response is read with ``.result(timeout_s=...)`` --
directly or through a name assigned in the same function.

What this cannot see (``Scan.blind_spots``): handles passed around or stored in
containers, calls made through helper functions, timeouts enforced by a caller
further up, and code that is not in the files given (an image).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

HANDLE_FACTORIES = ("get_deployment_handle", "get_app_handle")
WAIT_FOR = ("wait_for",)
TIMEOUT_CONTEXTS = ("timeout", "timeout_at", "fail_after", "move_on_after")
BLIND_SPOTS = ("handles passed around or kept in containers", "calls made through helper functions",
               "timeouts a caller further up enforces", "code that is not in the files read")


@dataclass(frozen=True)
class HandleCall:
    """One ``.remote()`` call on a handle: where, what it reads like, and its timeout
    (``how``: e.g. ``asyncio.wait_for``; empty when none).  ``assumed``: the handle was
    an unannotated constructor parameter."""

    file: str
    line: int
    cls: str
    code: str
    timeout: bool
    how: str = ""
    assumed: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Scan:
    """Every handle call found, and the files that could not be parsed."""

    calls: list[HandleCall] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def without_timeout(self) -> list[HandleCall]:
        return [c for c in self.calls if not c.timeout]


def _name(node: ast.AST) -> str:
    """The last name of ``a.b.c`` or ``c``; '' for anything else."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_deployment(cls: ast.ClassDef) -> bool:
    for deco in cls.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if _name(target) == "deployment":
            return True
    return False


def _handle_attrs(cls: ast.ClassDef) -> dict[str, bool]:
    """``attr -> assumed`` for the handles a class keeps on ``self``."""
    found: dict[str, bool] = {}
    init = next((f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and f.name == "__init__"), None)
    params: dict[str, bool] = {}
    if init is not None:
        for arg in [*init.args.args[1:], *init.args.kwonlyargs]:
            params[arg.arg] = arg.annotation is not None and "DeploymentHandle" in ast.unparse(arg.annotation)
    for node in ast.walk(cls):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and "DeploymentHandle" in ast.unparse(node.annotation):
            found[node.target.id] = False
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self"):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in params:
                if params[value.id]:
                    found[target.attr] = False
                elif _is_deployment(cls):
                    found.setdefault(target.attr, True)
            elif isinstance(value, ast.Call) and _name(value.func) in HANDLE_FACTORIES:
                found[target.attr] = False
    return found


def _receiver_attr(call: ast.Call) -> str | None:
    """``self.X`` at the root of ``self.X.remote``, ``self.X.method.remote``,
    ``self.X.options(...).remote`` and the like."""
    node: ast.AST = call.func
    if not (isinstance(node, ast.Attribute) and node.attr == "remote"):
        return None
    node = node.value
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return node.attr
            node = node.value
        else:
            return None


def _direct_bound(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    """How the expression ``node`` is bounded right where it is used: as the awaitable of
    ``wait_for(node, T)``, or read with ``node.result(timeout_s=T)`` ('' when neither)."""
    parent = parents.get(node)
    if isinstance(parent, ast.Call) and _name(parent.func) in WAIT_FOR and node in parent.args[:1] \
            and (len(parent.args) > 1 or any(k.arg == "timeout" for k in parent.keywords)):
        return "asyncio.wait_for"
    if isinstance(parent, ast.Attribute) and parent.attr == "result" and parent.value is node:
        caller = parents.get(parent)
        if isinstance(caller, ast.Call) and (caller.args or any(k.arg == "timeout_s" for k in caller.keywords)):
            return ".result(timeout_s=...)"
    return ""


def _block_bound(node: ast.AST) -> str:
    """``asyncio.timeout(...)`` (and the like) when ``node`` is a ``with`` block opening one."""
    if isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            if isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func) in TIMEOUT_CONTEXTS:
                return f"{ast.unparse(item.context_expr.func)}(...)"
    return ""


def _timeout_of(call: ast.Call, parents: dict[ast.AST, ast.AST], function: ast.AST | None) -> str:
    """How ``call`` is bounded in time ('' when it is not): where it is used, by a block
    around it, or -- kept in a name -- where that name is used in the same function."""
    node: ast.AST = call
    while node in parents:
        how = _direct_bound(node, parents)
        if how:
            return how
        parent = parents[node]
        how = _block_bound(parent)
        if how:
            return how
        if isinstance(parent, ast.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0], ast.Name) \
                and function is not None:
            how = _name_bounded(parent.targets[0].id, function, parents)
            if how:
                return how
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
            break
        node = parent
    return ""


def _name_bounded(name: str, function: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    """How a response kept in ``name`` is bounded where the same function uses it."""
    for use in ast.walk(function):
        if not (isinstance(use, ast.Name) and use.id == name and isinstance(use.ctx, ast.Load)):
            continue
        how = _direct_bound(use, parents) or next(
            (b for b in (_block_bound(a) for a in _ancestors(use, parents)) if b), "")
        if how:
            return how
    return ""


def scan_source(path: str, text: str) -> list[HandleCall] | None:
    """The handle calls in one file; None when it is not Python this interpreter can parse."""
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError):
        return None
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    calls: list[HandleCall] = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        handles = _handle_attrs(cls)
        if not handles:
            continue
        for node in ast.walk(cls):
            if not isinstance(node, ast.Call):
                continue
            attr = _receiver_attr(node)
            if attr not in handles:
                continue
            function = next((p for p in _ancestors(node, parents)
                             if isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
            how = _timeout_of(node, parents, function)
            code = ast.unparse(node)
            calls.append(HandleCall(path, node.lineno, cls.name, code if len(code) <= 80 else code[:77] + "...",
                                    bool(how), how, handles[attr]))
    return sorted(calls, key=lambda c: c.line)


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    out = []
    while node in parents:
        node = parents[node]
        out.append(node)
    return out


def scan(files: dict[str, str]) -> Scan:
    """Every handle call in ``files`` (``path -> text``)."""
    result = Scan()
    for path, text in sorted(files.items()):
        calls = scan_source(path, text)
        if calls is None:
            result.unreadable.append(path)
        else:
            result.calls.extend(calls)
    return result


def modules_of(import_path: str, files: dict[str, str]) -> list[str]:
    """The files an application's ``import_path`` (``pkg.module:app``) loads, and the
    modules they import that are among ``files`` (relative imports too)."""
    module = import_path.split(":", 1)[0].strip()
    todo, seen = [module], []
    while todo:
        name = todo.pop()
        path = _file_of(name, files)
        if path is None or path in seen:
            continue
        seen.append(path)
        try:
            tree = ast.parse(files[path])
        except (SyntaxError, ValueError):
            continue
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                    base = ".".join([*parts, base] if base else parts)
                todo.append(base)
                todo += [f"{base}.{a.name}" for a in node.names]
    return seen


def _file_of(module: str, files: dict[str, str]) -> str | None:
    stem = module.replace(".", "/")
    for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
        if candidate in files:
            return candidate
    return None
