"""The hallway's parts: a message on its way (Turn), routers of one capability each, and named dialogues.

After aiogram and python-telegram-bot, kept small:
- a `Router` holds one capability's handlers: menu clicks, events, commands (exact words or a pattern), the
  steps of its dialogues, media and free text; `include_router` puts routers together in a declared order,
  which is the only statement of precedence between capabilities;
- a `Dialogue` is a named conversation whose steps are namespaced ("accounts.bind:address"), with shared
  exits, a limit on wrong answers and a timeout (ConversationHandler's states, fallbacks and
  conversation_timeout);
- a person has ONE open question: the last one the service asked them. A bare digit answers it and nothing
  else; asking a new question replaces it (`Turn.ask`). It is kept in the shared state and saved only after
  the message's writes are committed.
The order of the stages is fixed in handlers/router.py.
"""
from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nlp
from handlers.context import Context
from handlers.normalise import command_words, normalise
from handlers.types import Inbound, Outcome

QUESTION_KEY = "conv:"  # + openid: the open question (the conversation state)
EXITS = frozenset({"退出", "取消", "算了", "不要了", "结束"})  # leave any dialogue; "0" too unless a step offers it

Handler = Callable[..., Awaitable[Outcome | None]]


@dataclass(slots=True)
class Question:
    name: str  # "dialogue:step", e.g. "accounts.bind:address"
    data: dict = field(default_factory=dict)
    tries: int = 0  # wrong answers so far

    @property
    def dialogue(self) -> str:
        return self.name.partition(":")[0]


class Turn:
    """One message on its way through the hallway: the message, its normalised text, the person's open
    question, and what the handlers decide to ask next."""

    __slots__ = ("msg", "ctx", "text", "words", "question", "_asked", "_verdict")
    UNCHANGED = object()  # `asked` when the reply neither asked nor closed a question

    def __init__(self, msg: Inbound, ctx: Context, question: Question | None = None,
                 verdict: nlp.Verdict | None = None) -> None:
        """`verdict`: a reading decided elsewhere (an Open311 client names the category itself)."""
        self.msg, self.ctx, self.question = msg, ctx, question
        self.text = normalise(msg.text) if msg.text else ""
        self.words = command_words(self.text)  # what commands match: edge punctuation trimmed
        self._asked: object = Turn.UNCHANGED
        self._verdict = verdict

    @property
    def openid(self) -> str:
        return self.msg.openid

    @property
    def verdict(self) -> nlp.Verdict:
        """The classifier's reading of the text, computed once and only when a handler needs it."""
        if self._verdict is None:
            self._verdict = nlp.classify(self.text)
        return self._verdict

    def rewrite(self, text: str) -> None:
        """Handle these words instead (an earlier message the person has now said was meant as a problem)."""
        from dataclasses import replace

        self.msg = replace(self.msg, text=text)
        self.text = normalise(text)
        self.words = command_words(self.text)
        self._verdict = None

    def ask(self, name: str, data: dict | None = None, tries: int = 0) -> None:
        """This reply asks a question: it replaces the open one (saved once the message's writes commit)."""
        self._asked = Question(name, data or {}, tries)

    def done(self) -> None:
        """This reply closes the open question."""
        self._asked = None

    @property
    def asked(self) -> Question | None | object:
        return self._asked

    def retry(self, reply: str, *, limit: int, give_up: str) -> Outcome:
        """A wrong answer to the open question: ask again, a few times, then stop kindly rather than trap
        the person in the dialogue."""
        q = self.question
        if q is None or q.tries + 1 >= limit:
            self.done()
            return Outcome(give_up)
        self.ask(q.name, q.data, q.tries + 1)
        return Outcome(reply)


def load_question(raw: str | None) -> Question | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return Question(value["q"], value.get("d") or {}, int(value.get("t", 0)))
    except (ValueError, KeyError, TypeError):
        return None  # an old or damaged entry: as if no question were open


async def open_question(ctx: Context, openid: str) -> Question | None:
    """The question this person was asked last and has not answered (for tests and the console)."""
    return load_question(await ctx.state.get(QUESTION_KEY + openid))


def dump_question(q: Question) -> str:
    return json.dumps({"q": q.name, "d": q.data, "t": q.tries}, ensure_ascii=False, separators=(",", ":"))


@dataclass(slots=True)
class Dialogue:
    """A named conversation: its steps answer the question of the same name; `0` and the shared EXITS
    leave it (unless a step offers 0 as a choice); an unanswered question is forgotten after `timeout_s`."""

    name: str
    timeout_s: float = 1800
    exit_reply: str = "好的，已退出。"
    timeout_setting: str | None = None  # a Context attribute that sets the timeout instead (a community's setting)
    steps: dict[str, Handler] = field(default_factory=dict)
    zero_is_choice: set[str] = field(default_factory=set)

    def step(self, name: str, *, zero_is_choice: bool = False) -> Callable[[Handler], Handler]:
        """Register `async handler(turn, data) -> Outcome | None` (None: not an answer; the message goes on)."""
        def register(handler: Handler) -> Handler:
            self.steps[name] = handler
            if zero_is_choice:
                self.zero_is_choice.add(name)
            return handler
        return register

    def state(self, step: str) -> str:
        if step not in self.steps:
            raise KeyError(f"{self.name} has no step {step!r}")
        return f"{self.name}:{step}"


@dataclass(slots=True)
class _Command:
    words: frozenset[str]
    pattern: re.Pattern | None
    handler: Handler


class Router:
    """One capability's handlers. Handlers take `(turn)`; pattern commands `(turn, match)`; dialogue steps
    `(turn, data)`. A handler returning None lets the message go on to the next handler."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.clicks: dict[str, Handler] = {}
        self.events: dict[str, Handler] = {}
        self.commands: list[_Command] = []
        self.dialogues: dict[str, Dialogue] = {}
        self.media: dict[str, Handler] = {}
        self.free_text: list[Handler] = []
        self.children: list[Router] = []

    def include_router(self, router: "Router") -> "Router":
        self.children.append(router)
        return router

    def click(self, *keys: str) -> Callable[[Handler], Handler]:
        return self._into(self.clicks, keys)

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        return self._into(self.events, names)

    def on_media(self, *kinds: str) -> Callable[[Handler], Handler]:
        return self._into(self.media, kinds)

    def command(self, *words: str, pattern: str | None = None) -> Callable[[Handler], Handler]:
        """Exact words (matched on the normalised text, edge punctuation trimmed, case-folded), or a pattern
        (`re.match` on the same text: anchor its end yourself)."""
        def register(handler: Handler) -> Handler:
            self.commands.append(_Command(frozenset(w.casefold() for w in words),
                                          re.compile(pattern, re.S) if pattern else None, handler))
            return handler
        return register

    def dialogue(self, dialogue: Dialogue) -> Dialogue:
        self.dialogues[dialogue.name] = dialogue
        return dialogue

    def text(self, handler: Handler) -> Handler:
        """Free text no command or open question took, in registration order."""
        self.free_text.append(handler)
        return handler

    @staticmethod
    def _into(table: dict, keys) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for key in keys:
                table.setdefault(key, handler)  # the first router to claim a key keeps it
            return handler
        return register

    def walk(self):
        """This router and those it includes, in the declared order (depth first)."""
        yield self
        for child in self.children:
            yield from child.walk()


def _first_characters(patterns: list[re.Pattern]) -> frozenset[str] | None:
    """Every character a match of these patterns can start with; None when one of them could start with
    anything (then every pattern is tried)."""
    from re import _parser

    from nlp.rules import _first_chars

    starts: set[str] = set()
    for pattern in patterns:
        first = _first_chars(_parser.parse(pattern.pattern, pattern.flags))
        if not first:
            return None
        starts |= first
    return frozenset(starts)


def _in_order(handlers: list[Handler]) -> Handler:
    """Several routers' handlers of one kind of media, asked in the declared order until one answers (a
    picture right after a new wish is the wish's, else the ticket's)."""
    if len(handlers) == 1:
        return handlers[0]

    async def first_answer(turn: Turn) -> Outcome:
        for handler in handlers:
            if (out := await handler(turn)) is not None:
                return out
        return Outcome(None)

    return first_answer


class Table:
    """Routers flattened once at start-up into lookup tables: what runs per message is a few dict lookups
    and a short list of anchored patterns, in the declared order."""

    def __init__(self, root: Router) -> None:
        routers = list(root.walk())
        self.clicks: dict[str, Handler] = {}
        self.events: dict[str, Handler] = {}
        self.media: dict[str, Handler] = {}
        self.words: dict[str, Handler] = {}
        self.patterns: list[tuple[re.Pattern, Handler]] = []
        self.steps: dict[str, tuple[Dialogue, Handler]] = {}
        self.dialogues: dict[str, Dialogue] = {}
        self.free_text: list[Handler] = []
        media: dict[str, list[Handler]] = {}
        for r in routers:
            for table, mine in ((self.clicks, r.clicks), (self.events, r.events)):
                for key, handler in mine.items():
                    table.setdefault(key, handler)
            for kind, handler in r.media.items():
                media.setdefault(kind, []).append(handler)
            for c in r.commands:
                for w in c.words:
                    self.words.setdefault(w, c.handler)
                if c.pattern is not None:
                    self.patterns.append((c.pattern, c.handler))
            for d in r.dialogues.values():
                if d.name in self.dialogues:
                    raise ValueError(f"two dialogues named {d.name!r}")
                self.dialogues[d.name] = d
                for step, handler in d.steps.items():
                    self.steps[f"{d.name}:{step}"] = (d, handler)
            self.free_text += r.free_text
        self.pattern_starts = _first_characters([p for p, _ in self.patterns])
        self.media = {kind: _in_order(handlers) for kind, handlers in media.items()}

    async def command(self, turn: Turn) -> Outcome | None:
        words = turn.words
        if not words:
            return None
        if (handler := self.words.get(words.casefold())) is not None:
            if (out := await handler(turn)) is not None:
                return out
        if self.pattern_starts is not None and words[0] not in self.pattern_starts:
            return None  # most messages (every complaint) start with a character no command starts with
        for pattern, handler in self.patterns:
            if (m := pattern.match(words)) is not None and (out := await handler(turn, m)) is not None:
                return out
        return None

    async def answer(self, turn: Turn) -> Outcome | None:
        """The open question's step, if the message answers it (or leaves the dialogue)."""
        q = turn.question
        if q is None or (found := self.steps.get(q.name)) is None:
            return None
        dialogue, handler = found
        step = q.name.partition(":")[2]
        if turn.words in EXITS or (turn.words == "0" and step not in dialogue.zero_is_choice):
            turn.done()
            return Outcome(dialogue.exit_reply)
        return await handler(turn, q.data)

    def timeout_of(self, question: Question, ctx: Context) -> float:
        dialogue = self.dialogues.get(question.dialogue)
        if dialogue is None:
            return ctx.conversation_ttl_s
        return getattr(ctx, dialogue.timeout_setting) if dialogue.timeout_setting else dialogue.timeout_s
