"""The CLI page of the generated reference: every command of the Typer app with its arguments and
options, read from the click commands Typer builds (so it is what `modelspec COMMAND --help` says)."""

from __future__ import annotations


def cli_page(header: str) -> str:
    import typer

    from modelspec.cli.main import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="modelspec")
    parts = [f"# Commands\n\n{header}", f"{' '.join((group.help or '').split())}\n",
             "Exit codes and environment variables: see [the commands guide](../cli.md).\n",
             params_table(group.params)]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        parts.append(f"## {name}\n\n```\nmodelspec {name} {usage(command.params)}\n```\n\n{help_text(command)}\n")
        parts.append(params_table(command.params))
    return "\n".join(parts)


def usage(params: list) -> str:
    words = ["[OPTIONS]"]
    for param in params:
        if param.param_type_name == "argument":
            word = (param.metavar or param.name).upper() + ("..." if param.nargs == -1 else "")
            words.append(word if param.required else f"[{word}]")
    return " ".join(words)


def help_text(command) -> str:
    """The command's docstring, its paragraphs kept (Typer cuts its --help at a \\f line)."""
    text = (command.help or "").split("\f")[0].strip()
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def params_table(params: list) -> str:
    rows = []
    for param in params:
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        if param.param_type_name == "option":
            names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        else:
            names = f"`{(param.metavar or param.name).upper()}`"
        rows.append(f"| {names} | {cell(type_name(param))} | {cell(default_name(param))} "
                    f"| {cell(getattr(param, 'help', None) or '')} |")
    if not rows:
        return ""
    return "\n".join(["| argument or option | type | default | description |", "| --- | --- | --- | --- |",
                      *rows]) + "\n"


NAMES = {"str": "text", "int": "integer", "float": "number", "bool": "flag", "Path": "path"}


def type_name(param) -> str:
    """The value's type as Typer declares it (`list[str]` for a repeatable option is its items')."""
    bare = param.bare_type() if callable(getattr(param, "bare_type", None)) else param.type.name
    inner = bare[5:-1] if bare.startswith("list[") and bare.endswith("]") else bare
    text = "flag" if getattr(param, "is_flag", False) else NAMES.get(inner, inner)
    return text + (", repeatable" if getattr(param, "multiple", False) else "") + (
        ", one or more" if param.nargs == -1 else "")


def default_name(param) -> str:
    if param.required:
        return "required"
    value = param.default
    if callable(value) or value is None or isinstance(value, (list, tuple)) or value is False:
        return ""
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
