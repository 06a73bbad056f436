"""Command-line helpers shared by the scripts: hyperparameters from signatures, clean errors for user mistakes."""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from gan_zoo.errors import USER_ERRORS, UserError


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors (unknown option, bad value, missing argument) are ``UserError``: one
    ``error:`` line and exit status 2 through ``run_main``, like every other bad input."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` for a person: an option's default is shown once, as ``(default: X)``, and not at all where its help
    already states it or where it is a bare None (an option that is unset unless given); a value is named by its type
    (INT, FLOAT) rather than by repeating the option's name; text is wrapped at the terminal's width, at most 100
    columns."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 32, width: int | None = None):
        if width is None:
            width = min(shutil.get_terminal_size().columns, 100) - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or "(default" in text or not action.option_strings or action.default is None
                or action.default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return {int: "INT", float: "FLOAT"}.get(action.type, action.dest.upper())


def check_member(model, member: int) -> None:
    """``--member``: one generator of a model made of several (an ensemble SGAN's local generators, an EGAN's
    parents), 1..N; anything else is a user error saying what is valid."""
    if model.check_member is None:
        raise UserError(f"--member needs a model with several generators (ensemble_sgan: local generators, egan: "
                        f"parents), not {model.model_name!r}")
    try:
        model.check_member(member)
    except ValueError as e:
        raise UserError(f"--{e}") from e


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main`` and turn user errors into ``error: <message>`` on stderr with exit status 2."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(e: BaseException) -> str:
    """The message of a user error on one line. An error raised in a DataLoader worker reaches the main process
    with the worker's traceback in its message: keep the error's own last line."""
    message = str(e)
    if "Original Traceback" in message:
        last = [ln for ln in message.splitlines() if ln.strip()][-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(message.split())


def plain(text: str) -> str:
    """Docstring text as help text: reStructuredText literals (x between double backticks) as plain x, whitespace
    collapsed to single spaces (argparse wraps it)."""
    return " ".join(re.sub(r"``(.+?)``", r"\1", text).split())


def docstring_summary(obj) -> str:
    """The first paragraph of ``obj``'s docstring as plain text: for a model, what it is and the paper it comes
    from."""
    doc = inspect.getdoc(obj) or ""
    return plain(doc.split("\n\n", 1)[0])


def docstring_args(obj) -> dict[str, str]:
    """``{name: description}`` from the ``Args:`` section of a Google-style docstring."""
    doc = inspect.getdoc(obj) or ""
    m = re.search(r"^Args[^\n]*:\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    out: dict[str, str] = {}
    if not m:
        return out
    current = None
    for line in m.group(1).splitlines():
        hit = re.match(r"^ {4}(\w[\w, ]*):\s*(.*)$", line)  # a name at the entries' indent, not a continuation
        if hit:
            names = [n.strip() for n in hit.group(1).split(",")]
            for n in names:
                out[n] = hit.group(2).strip()
            current = names
        elif current and line.strip():
            for n in current:
                out[n] += " " + line.strip()
    return out


def _optional(value: str) -> str | None:
    return None if value.lower() in ("none", "null") else value


def _parser_for(tp: Any) -> tuple[Callable[[str], Any] | None, bool]:
    """(argparse type, is_bool) for an annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner, is_bool = _parser_for(args[0]) if len(args) == 1 else (str, False)
        return (lambda s: None if _optional(s) is None else inner(s)), is_bool
    if tp is bool:
        return None, True
    if tp in (int, float, str):
        return tp, False
    return str, False


def _metavar(tp: Any) -> str:
    """How ``--help`` names an option's value: its type (``int | None`` -> INT)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else str
    return {int: "INT", float: "FLOAT"}.get(tp, "STR")


def init_params(cls) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``cls.__init__`` that have defaults (the hyperparameters)."""
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def add_hparams(parser: argparse.ArgumentParser, cls, skip: set[str], title: str) -> list[str]:
    """Add one ``--name`` option per hyperparameter of ``cls`` (bools as ``--x/--no-x``), in a group headed by the
    first paragraph of ``cls``'s docstring and helped by its ``Args:`` entries; return their names."""
    group = parser.add_argument_group(title, docstring_summary(cls) or None)
    hints = typing.get_type_hints(cls.__init__)
    helps = {}
    for c in reversed(cls.__mro__):  # a subclass may document only what it changes
        helps.update(docstring_args(c) if c.__doc__ else {})
    names = []
    for name, p in init_params(cls).items():
        if name in skip:
            continue
        tp, is_bool = _parser_for(hints.get(name, type(p.default) if p.default is not None else str))
        default = p.default if p.default is not None else cls.hparam_default(name)
        shown = repr(default) if default == "" else default  # an empty string shows as ''
        help_text = plain(helps.get(name, "")).rstrip(".")
        if "(default" not in help_text:  # where the docstring explains a default (e.g. "default: lr"), it stays alone
            help_text = f"{help_text} (default: {shown})".strip()
        # "%(default).0s" prints nothing; it stops ArgumentDefaultsHelpFormatter from repeating the default
        help_text = help_text.replace("%", "%%") + "%(default).0s"
        flag = "--" + name.replace("_", "-")
        if is_bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=p.default,
                               help=help_text)
        else:
            group.add_argument(flag, dest=name, type=tp, default=p.default, help=help_text,
                               metavar=_metavar(hints.get(name, type(p.default))))
        names.append(name)
    return names


def read_config(path: str) -> dict:
    """A flat YAML mapping of option names (``lr``, ``max_images``, ...) to values."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"cannot parse config {p}: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise UserError(f"config {p} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` is the first CUDA GPU where there is one, else the CPU; any other value must name a
    device torch knows and this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name!r} is not a device: {str(e).splitlines()[0]}; use auto, cpu or cuda") from e
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use auto or cpu")
    return name
