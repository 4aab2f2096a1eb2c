"""Messages-API messages: `ContentBlock`, `Message`, and `Messages`, a request's list of them.

An agent resends its whole history every turn (up to MAX_MESSAGES), and routing reads little of
it: each message's role and how many characters it holds. So `Messages` checks a JSON list in one
pass over the plain dicts, by exactly the rules pydantic applies to `Message`, counting those
characters as it goes, and builds a `Message` only when one is read (the last, usually). A list
the pass is unsure of gets pydantic's full validation, so errors name the field as always. Dumped,
`Messages` gives what a list of `Message` would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SerializationInfo,
    TypeAdapter,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

# Bounds that keep one request's memory and work finite; the body-size limit guards the rest.
MAX_MESSAGES = 2_000
MAX_BLOCKS_PER_MESSAGE = 500
MAX_BLOCK_TYPE_CHARS = 64
ROLES = ("user", "assistant")


class ContentBlock(BaseModel):
    """One Messages-API content block; only the fields routing reads are typed, others are kept."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=MAX_BLOCK_TYPE_CHARS)
    text: str | None = None
    # tool_result content is a string or a list of blocks; nested lists are flattened, not recursed.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _text_blocks_have_text(self) -> ContentBlock:
        if self.type == "text" and self.text is None:
            raise ValueError("a content block of type 'text' needs a string 'text' field")
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock] = Field(
        description="A string, or a list of content blocks as in the Messages API."
    )

    @model_validator(mode="after")
    def _bounded(self) -> Message:
        if isinstance(self.content, list) and len(self.content) > MAX_BLOCKS_PER_MESSAGE:
            raise ValueError(
                f"content has {len(self.content)} blocks; at most {MAX_BLOCKS_PER_MESSAGE} allowed"
            )
        return self


_BLOCK_FIELDS = ("text", "content", "name")
_MESSAGE_LIST: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def content_chars(content: str | list[ContentBlock] | None) -> int:
    """The characters routing counts in a message's (or system prompt's) content: a string's
    length, or per block its text plus its tool-result content (a string, or the "text" of each
    inner block). router.core.features prices and describes a turn by it; `_scan` counts the
    same on parsed JSON."""
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    total = 0
    for block in content:
        total += len(block.text or "")
        if isinstance(block.content, str):
            total += len(block.content)
        elif isinstance(block.content, list):
            total += sum(len(str(b.get("text", ""))) for b in block.content)
    return total


def _scan(messages: list[Any]) -> tuple[int, int] | None:
    """(user turns, content_chars of all) for parsed JSON messages that pydantic would accept as
    Message objects, in one pass; None at the first it might not (pydantic then decides and
    explains). Inlined: it runs over every message an agent resends, every turn."""
    user_turns = chars = 0
    for message in messages:
        if type(message) is not dict:
            return None
        role = message.get("role")
        if role == "user":
            user_turns += 1
        elif role != "assistant":
            return None
        content = message.get("content")
        if type(content) is str:
            chars += len(content)
            continue
        if type(content) is not list or len(content) > MAX_BLOCKS_PER_MESSAGE:
            return None
        for block in content:  # ContentBlock's rules, field by field
            if type(block) is not dict:
                return None
            kind = block.get("type")
            if type(kind) is not str or not 0 < len(kind) <= MAX_BLOCK_TYPE_CHARS:
                return None
            text = block.get("text")
            if type(text) is str:
                chars += len(text)
            elif text is not None or kind == "text":
                return None
            inner = block.get("content")
            if type(inner) is str:
                chars += len(inner)
            elif inner is not None:
                if type(inner) is not list:
                    return None
                for item in inner:
                    if type(item) is not dict:
                        return None
                    chars += len(str(item.get("text", "")))
            name = block.get("name")
            if name is not None and type(name) is not str:
                return None
    return user_turns, chars


def _dump_block(block: dict[str, Any], exclude_none: bool) -> dict[str, Any]:
    """ContentBlock.model_dump of a block `_scan` accepted: fields first, then extras."""
    out = {"type": block["type"]}
    for name in _BLOCK_FIELDS:
        value = block.get(name)
        if value is not None or not exclude_none:
            out[name] = value
    for name, value in block.items():
        if name != "type" and name not in _BLOCK_FIELDS and (value is not None or not exclude_none):
            out[name] = value
    return out


def _dump_message(message: dict[str, Any], exclude_none: bool) -> dict[str, Any]:
    content = message["content"]
    if type(content) is list:
        content = [_dump_block(b, exclude_none) for b in content]
    out = {"role": message["role"], "content": content}
    for name, value in message.items():
        if name not in ("role", "content") and (value is not None or not exclude_none):
            out[name] = value
    return out


def _no_nones(values: dict[str, Any]) -> dict[str, Any]:
    if None not in values.values():
        return values
    return {k: v for k, v in values.items() if v is not None}


def _json_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if type(content) is list and any(None in block.values() for block in content):
        message = {**message, "content": [_no_nones(b) for b in content]}
    return _no_nones(message)


class Messages(Sequence[Message]):
    """A request's messages, in order; each item a validated `Message`.

    Built from parsed JSON, the list is checked in one pass and each Message is made when first
    read (the list and its dicts are kept as given, so callers must not change them); built from
    Message objects, it holds them. `user_turns` and `content_chars` are counted either way.
    """

    __slots__ = ("_items", "_raw", "user_turns", "content_chars")

    def __init__(
        self, items: list[Any], user_turns: int, chars: int, raw: list[Any] | None = None
    ) -> None:
        self._items: list[Any] = items  # a Message, or the dict it will be built from
        self._raw = raw  # the parsed JSON messages, when built from them
        self.user_turns = user_turns
        self.content_chars = chars

    @classmethod
    def from_json(cls, messages: list[Any]) -> Messages | None:
        """Messages over parsed JSON, or None when pydantic must look at them (see _scan)."""
        if len(messages) > MAX_MESSAGES:
            return None
        counts = _scan(messages)
        if counts is None:
            return None
        raw = list(messages)
        return cls(list(raw), *counts, raw=raw)

    @classmethod
    def from_messages(cls, messages: Sequence[Message]) -> Messages:
        user_turns = sum(1 for m in messages if m.role == "user")
        return cls(list(messages), user_turns, sum(content_chars(m.content) for m in messages))

    def _built(self, index: int) -> Message:
        item = self._items[index]
        if type(item) is not Message:
            item = self._items[index] = Message.model_validate(item)
        return item

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        if isinstance(index, slice):
            return [self._built(i) for i in range(len(self._items))[index]]
        return self._built(index)

    def __iter__(self) -> Iterator[Message]:
        return (self._built(i) for i in range(len(self._items)))

    def __reversed__(self) -> Iterator[Message]:
        return (self._built(i) for i in range(len(self._items) - 1, -1, -1))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Messages | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable caches, like a list

    def __repr__(self) -> str:
        return f"Messages({len(self)} messages)"

    def dump(self, info: SerializationInfo) -> list[Any]:
        """What `list[Message]` dumps to. From parsed JSON that is the dicts themselves, fields
        first, without building a Message; anything unusual asked of it builds them."""
        plain = self._raw is not None and not (
            info.include or info.exclude or info.exclude_unset or info.exclude_defaults
        )
        if plain:
            assert self._raw is not None
            return [_dump_message(m, info.exclude_none) for m in self._raw]
        include: Any = info.include  # pydantic-core types the two alike but spells them apart
        exclude: Any = info.exclude
        dumped: list[Any] = _MESSAGE_LIST.serializer.to_python(
            list(self),
            mode=info.mode,
            include=include,
            exclude=exclude,
            exclude_unset=info.exclude_unset,
            exclude_defaults=info.exclude_defaults,
            exclude_none=info.exclude_none,
        )
        return dumped

    def json_values(self) -> list[Any]:
        """The messages as JSON values without None fields: what dump(mode="json",
        exclude_none=True) gives, key order aside, sharing the parsed dicts where it can (the
        call log writes 2,000 of them in a fraction of a millisecond)."""
        if self._raw is None:
            values: list[Any] = _MESSAGE_LIST.dump_python(
                list(self), mode="json", exclude_none=True
            )
            return values
        return [_json_message(m) for m in self._raw]

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        full = core_schema.list_schema(handler.generate_schema(Message), max_length=MAX_MESSAGES)

        def validate(value: Any, validate_fully: core_schema.ValidatorFunctionWrapHandler) -> Any:
            if isinstance(value, Messages):
                return value
            if type(value) is list and (lazy := cls.from_json(value)) is not None:
                return lazy
            return cls.from_messages(validate_fully(value))

        return core_schema.no_info_wrap_validator_function(
            validate,
            full,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value, info: value.dump(info), info_arg=True
            ),
        )
