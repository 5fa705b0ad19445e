"""The documentation (README.md and docs/*.md) against the code: commands and links.

* Every ``cfld`` command in a shell block (fenced ``bash``/``sh``/``shell``/``console`` or unmarked) must run
  as written: its subcommands exist, every option it uses exists for that (sub)command, a choice option gets
  one of its choices, positional arguments and required options are there. The forms ``cfld ...``,
  ``python -m cfld ...`` and ``accelerate launch ... -m cfld ...`` are found, with backslash continuations,
  ``$ `` prompts, comments and pipes/``&&``/``;`` handled. Commands are checked against the click command
  tree itself (``cfld.cli.cli``, each command's params' ``opts``/``secondary_opts``), not its help text.
* Commands in inline code spans (```cfld transfer -s photo.jpg ...```) are checked more leniently: they are
  mentions, so ``[...]`` marks optional parts, ``a/b`` lists alternative subcommands and options may be
  given without their required companions, but every subcommand and option named must exist.
* Every relative link (and image) points to an existing file, and a ``#anchor`` to a heading of its page.

Blocks of program output or directory trees are fenced as ``text`` so that they are not read as commands.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from cfld.cli import cli

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "shell-session", "zsh"}
PROGRAMS = {"python", "python3", "accelerate"}  # run cfld as `-m cfld`
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "|&"}
NUMBER = re.compile(r"^-\d")  # -1, -0.5: a value, not an option
ELLIPSIS = {"...", "…"}


# ------------------------------------------------------------------------------------------ reading markdown


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first line of the block's content
    language: str
    lines: list[str]


@dataclass
class Command:
    where: str  # file:line
    args: list[str]  # what follows `cfld`
    strict: bool  # a shell block (must run as written) or an inline mention
    source: str = ""


@dataclass
class Checked:
    problems: list[str] = field(default_factory=list)
    paths: set[tuple[str, ...]] = field(default_factory=set)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


FENCE = re.compile(r"^(?P<indent> {0,3}|\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def split_fences(path: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced blocks of a markdown file, and its other lines (number, text) with fences blanked."""
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    open_fence: str | None = None
    block: Block | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if open_fence is None:
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                open_fence = match["fence"]
                info = match["info"].strip().split()
                block = Block(path, number + 1, info[0].lower() if info else "", [])
                prose.append((number, ""))
            else:
                prose.append((number, line))
        else:
            if match and match["fence"][0] == open_fence[0] and len(match["fence"]) >= len(open_fence) \
                    and not match["info"].strip():
                blocks.append(block)
                open_fence = block = None
            else:
                block.lines.append(line)
            prose.append((number, ""))
    assert open_fence is None, f"{rel(path)}: a fenced block is never closed"
    return blocks, prose


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """The command lines of a shell block, continuations joined: (line number, command)."""
    console = block.language in ("console", "shell-session")
    commands: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.lines):
        number = block.line + offset
        line = raw.rstrip()
        if pending is None:
            stripped = line.lstrip()
            if stripped.startswith("$ ") or stripped == "$":
                line = stripped[2:]
            elif console:
                continue  # output of the command above
            pending = (number, "")
        start, text = pending
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = (start, text + line[:-1] + " ")
            continue
        text += line
        if re.search(r"(\|\||&&|\|)\s*$", text):  # the command goes on on the next line
            pending = (start, text + " ")
            continue
        commands.append((start, text))
        pending = None
    if pending is not None:
        commands.append(pending)
    return [(n, t) for n, t in commands if t.strip()]


def tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # `#` starting a word begins a comment, as in the shell
    return list(lexer)


def segments(words: list[str]) -> list[list[str]]:
    """Split a command line at pipes, &&, ||, ; and drop redirections (`> log`, `2>&1`)."""
    out: list[list[str]] = [[]]
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in SEPARATORS:
            out.append([])
        elif set(word) <= set("<>&") and ("<" in word or ">" in word):
            if out[-1] and out[-1][-1].isdigit():
                out[-1].pop()  # the 2 of 2>&1
            skip = True
        else:
            out[-1].append(word)
    return [segment for segment in out if segment]


def cfld_args(words: list[str]) -> list[str] | None:
    """What follows `cfld` in one simple command, or None when it does not run cfld."""
    i = 0
    while i < len(words) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i]):
        i += 1  # environment assignments
    while i < len(words) and words[i] in ("time", "exec", "sudo", "env"):
        i += 1
    if i >= len(words):
        return None
    program = words[i].rsplit("/", 1)[-1]
    if program == "cfld":
        return words[i + 1:]
    if program in PROGRAMS or re.fullmatch(r"python3(\.\d+)?", program):
        for j in range(i + 1, len(words) - 1):
            if words[j] == "-m" and words[j + 1] == "cfld":
                return words[j + 2:]
    return None


def block_commands(path: Path) -> list[Command]:
    found = []
    blocks, _ = split_fences(path)
    for block in blocks:
        if block.language not in SHELL_LANGUAGES:
            continue
        for number, text in shell_lines(block):
            where = f"{rel(path)}:{number}"
            try:
                words = tokens(text)
            except ValueError as err:  # an unclosed quote: the shell would not run it either
                if re.search(r"(^|[\s/])cfld(\s|$)", text):
                    found.append(Command(where, ["<unparsable>", str(err)], True, text))
                continue
            for segment in segments(words):
                args = cfld_args(segment)
                if args is not None:
                    found.append(Command(where, args, True, text))
    return found


CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def inline_commands(path: Path) -> list[Command]:
    _, prose = split_fences(path)
    text = "\n".join(line for _, line in prose)
    found = []
    for match in CODE_SPAN.finditer(text):
        span = match[1]
        if "\n\n" in span:
            continue
        number = text.count("\n", 0, match.start()) + 1
        try:
            words = tokens(span.replace("\n", " ").replace("[", " ").replace("]", " "))
        except ValueError:
            continue
        for segment in segments(words):
            args = cfld_args(segment)
            if args is not None:
                found.append(Command(f"{rel(path)}:{number}", args, False, span))
    return found


# ----------------------------------------------------------------------------------- the click command tree


def context(command: click.Command, parent: click.Context | None, name: str) -> click.Context:
    return click.Context(command, parent=parent, info_name=name, **command.context_settings)


def options_of(command: click.Command, ctx: click.Context) -> dict[str, click.Parameter]:
    names = {}
    for param in command.get_params(ctx):  # includes the help option (-h, --help)
        if isinstance(param, click.Option):
            for name in [*param.opts, *param.secondary_opts]:
                names[name] = param
    return names


def leaf_commands() -> set[tuple[str, ...]]:
    leaves: set[tuple[str, ...]] = set()

    def walk(command: click.Command, ctx: click.Context, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, context(sub, ctx, name), path + (name,))
        else:
            leaves.add(path)

    walk(cli, context(cli, None, "cfld"), ("cfld",))
    return leaves


def takes_value(param: click.Option) -> bool:
    return not (param.is_flag or param.count)


def check(command: Command, result: Checked) -> None:
    where = command.where
    if command.args[:1] == ["<unparsable>"]:
        result.problems.append(f"{where}: cannot split the command line ({command.args[1]}): {command.source}")
        return
    _walk(cli, context(cli, None, "cfld"), ["cfld"], list(command.args), command.strict, where, result)


def _walk(cmd: click.Command, ctx: click.Context, path: list[str], args: list[str], strict: bool, where: str,
          result: Checked) -> None:
    name = " ".join(path)
    options = options_of(cmd, ctx)
    seen: set[str] = set()
    positionals: list[str] = []
    eager = ellipsis = False
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            positionals.extend(args[i:])
            break
        if word in ELLIPSIS or word.endswith("..."):
            ellipsis = True  # `PHOTOS...`, `...`: a placeholder for more of the same
            if word in ELLIPSIS:
                continue
        if word.startswith("-") and len(word) > 1 and not NUMBER.match(word):
            option, has_value, _ = word.partition("=") if word.startswith("--") else (word, "", "")
            param = options.get(option)
            if param is None and not word.startswith("--") and len(word) > 2 and word[:2] in options:
                param, has_value = options[word[:2]], "="  # -j2: a short option with its value attached
                option = word[:2]
            if param is None:
                known = ", ".join(sorted(o for o in options if o.startswith("--")))
                result.problems.append(f"{where}: `{name}` has no option {option} (it has: {known})")
                continue
            seen.add(param.name)
            eager = eager or param.is_eager
            if takes_value(param) and not has_value:
                values = args[i:i + max(param.nargs, 1)]
                optional = getattr(param, "_flag_needs_value", False)  # --resume [CHECKPOINT]
                if optional and (not values or values[0].startswith("-")):
                    values = []
                i += len(values)
                if strict and len(values) < max(param.nargs, 1) and not optional:
                    result.problems.append(f"{where}: `{name} {option}` needs a value")
                if isinstance(param.type, click.Choice) and values and not values[0].isupper():
                    choices = [str(c) for c in param.type.choices]
                    if values[0] not in choices and not set(values[0].split("/")) <= set(choices):
                        result.problems.append(f"{where}: `{name} {option} {values[0]}`: not one of "
                                               f"{', '.join(choices)}")
            continue
        if isinstance(cmd, click.Group) and not positionals:
            alternatives = [word] if strict else word.split("/")
            subs = [(alt, cmd.get_command(ctx, alt)) for alt in alternatives]
            if all(sub is not None for _, sub in subs):
                for alt, sub in subs:
                    _walk(sub, context(sub, ctx, alt), path + [alt], args[i:], strict, where, result)
                return
            if not strict and (word.isupper() or word in ELLIPSIS):
                return  # `cfld COMMAND --help`: a placeholder
            known = ", ".join(cmd.list_commands(ctx))
            result.problems.append(f"{where}: `{name}` has no subcommand {word!r} (it has: {known})")
            return
        positionals.append(word)
    result.paths.add(tuple(path))
    if isinstance(cmd, click.Group):
        if strict and not eager:
            result.problems.append(f"{where}: `{name}` needs a subcommand ({', '.join(cmd.list_commands(ctx))})")
        return
    arguments = [p for p in cmd.get_params(ctx) if isinstance(p, click.Argument)]
    if not any(p.nargs == -1 for p in arguments):
        most = sum(p.nargs for p in arguments)
        if len(positionals) > most:
            result.problems.append(f"{where}: `{name}` takes {most} argument(s), got {len(positionals)}: "
                                   f"{' '.join(positionals)}")
    if strict and not eager and not ellipsis:
        least = sum(max(p.nargs, 1) for p in arguments if p.required)
        if len(positionals) < least:
            result.problems.append(f"{where}: `{name}` needs {least} argument(s), got {len(positionals)}")
        for param in cmd.get_params(ctx):
            if isinstance(param, click.Option) and param.required and param.name not in seen:
                result.problems.append(f"{where}: `{name}` needs {'/'.join(param.opts)}")


# ------------------------------------------------------------------------------------------------- the tests


def all_commands() -> tuple[list[Command], list[Command]]:
    strict, lenient = [], []
    for path in DOCS:
        strict += block_commands(path)
        lenient += inline_commands(path)
    return strict, lenient


def test_doc_files_exist():
    assert (REPO / "README.md").is_file()
    assert len(DOCS) > 5, "the docs/ pages are missing"


def check_all(commands: list[Command]) -> Checked:
    result = Checked()
    for command in commands:
        check(command, result)
    return result


def test_commands_in_shell_blocks_match_the_cli():
    strict, _ = all_commands()
    result = check_all(strict)
    assert not result.problems, "documented commands that would not run:\n" + "\n".join(result.problems)
    assert len(strict) >= 30, f"only {len(strict)} cfld commands found in shell blocks: is the parser broken?"
    assert len(result.paths) >= 10, f"shell blocks cover only {sorted(result.paths)}"


def test_commands_in_inline_code_match_the_cli():
    _, lenient = all_commands()
    result = check_all(lenient)
    assert not result.problems, "commands mentioned in the text that do not exist:\n" + "\n".join(result.problems)
    assert len(lenient) >= 30, f"only {len(lenient)} inline cfld commands found: is the parser broken?"


def test_every_command_is_documented():
    strict, lenient = all_commands()
    result = check_all(strict + lenient)
    missing = sorted(" ".join(p) for p in leaf_commands() - result.paths)
    assert not missing, f"commands of the CLI that no page shows: {', '.join(missing)}"


# ----------------------------------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = split_fences(path)
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose:
        match = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[1])
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    _, prose = split_fences(path)
    found = []
    for number, line in prose:
        line = CODE_SPAN.sub(lambda m: " " * len(m[0]), line)  # `[x](y)` in code is not a link
        found += [(number, m[1]) for m in LINK.finditer(line)]
        match = REFERENCE.match(line)
        if match:
            found.append((number, match[1]))
    return found


def test_relative_links_point_to_existing_files_and_anchors():
    problems = []
    checked = 0
    for path in DOCS:
        for number, target in links(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            if not destination.exists():
                problems.append(f"{rel(path)}:{number}: {target}: no such file")
                continue
            try:
                destination.relative_to(REPO)
            except ValueError:
                problems.append(f"{rel(path)}:{number}: {target}: outside the repository")
                continue
            if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                problems.append(f"{rel(path)}:{number}: {target}: no heading #{anchor} in {rel(destination)} "
                                f"(it has: {', '.join(sorted(anchors(destination)))})")
    assert not problems, "broken links:\n" + "\n".join(problems)
    assert checked >= 20, f"only {checked} relative links found: is the parser broken?"


def test_every_docs_page_is_reachable_from_the_readme():
    readme = {(REPO / t.partition("#")[0]).resolve() for _, t in links(REPO / "README.md") if "://" not in t}
    pages = [p for p in DOCS[1:]]
    missing = [rel(p) for p in pages if p.resolve() not in readme]
    assert not missing, f"docs pages the README does not link to: {', '.join(missing)}"


# -------------------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize("line, problem", [
    ("cfld transfer -s a.jpg -p p.json -m demo -o out/", None),
    ("cfld transfer -s a.jpg -p p.json -m demo --no-such-option", "no option --no-such-option"),
    ("cfld pose detect a.jpg -o p.json --draw p.png", None),
    ("cfld pose detec a.jpg -o p.json", "no subcommand 'detec'"),
    ("accelerate launch --multi_gpu --num_processes 8 -m cfld train --config x --output y", None),
    ("accelerate launch --multi_gpu -m cfld train --cnofig x", "no option --cnofig"),
    ("python -m cfld evaluate -g a -t b --size 256x176 -o m.json", None),
    ("cfld demo | tee log.txt && cfld frame a.jpg -o out/ --bogus", "no option --bogus"),
    ("cfld convert a/ b/ c/", "takes 2 argument(s)"),
    ("cfld prepare photos -o data/mine", None),
    ("cfld evaluate -g a -t b --size-mismatch never", "not one of"),
    ("cfld sample -d data -o results/", "needs -m/--model"),
    ("cfld --debug train --list-presets  # comment --nope", None),
    ("cfld pose", "needs a subcommand"),
])
def test_checker(line, problem):
    block = Block(Path(REPO / "README.md"), 1, "bash", [line])
    result = Checked()
    for number, text in shell_lines(block):
        for segment in segments(tokens(text)):
            args = cfld_args(segment)
            if args is not None:
                check(Command(f"x:{number}", args, True, text), result)
    if problem is None:
        assert not result.problems
    else:
        assert any(problem in p for p in result.problems), result.problems


def test_checker_reads_continuations_prompts_and_console_output():
    block = Block(REPO / "README.md", 10, "console", [
        "$ cfld sample -m demo -d data \\",
        "    -o results/ --bogus",
        "cfld sample output line --not-an-option",
        "$ echo done",
    ])
    lines = shell_lines(block)
    assert lines == [(10, "cfld sample -m demo -d data      -o results/ --bogus"), (13, "echo done")]
