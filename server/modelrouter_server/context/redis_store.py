"""The shared conversation store: Redis, for several router replicas; one server or a
Redis Cluster (`redis+cluster://`, see `modelrouter_server.redis_connection`).

Keys (unchanged since the first version, so data written by any earlier version reads as is;
the `{...}` hash tags decide the cluster slot of each key):

    <prefix>conversations          sorted set, all scores 0, members "<inverted created>:<id>",
                                   so lexicographic order is newest first (keyset paging):
                                   the default owner's conversations (all those created
                                   before tenants existed, so an old store needs no migration)
    <prefix>tenant:<name>:conversations   the same, for each other owning tenant
    <prefix>conv:{<id>}            hash: created_us, updated_us, metadata (JSON), member,
                                   tenant (absent: the default owner)
    <prefix>conv:{<id>}:msgs       list: one JSON message per seq (the index is the seq)
    <prefix>conv:{<id>}:by         hash: replaced seq -> the seq of the summary replacing it
    <prefix>conv:{<id>}:req        hash: request id -> the first seq of the turn it added
    <prefix>image:{<sha256>}       string: an image's bytes (base64), once for all messages
    <prefix>image:{<sha256>}:refs  set: the conversations whose messages carry the image

Every script touches the keys of one hash tag only (one conversation, or one
image), so each runs atomically on one cluster node. Appending runs as one Lua script,
which Redis executes atomically across every client: it reads the list length as the first
new seq and pushes the turn in the same step, so concurrent turns from any number of
replicas get distinct, gap-free seqs. The script does every check before its first write,
so a refused append writes nothing; that includes a turn whose request id is already in
the conversation (checked and recorded in the same script, so two replicas appending the
same id cannot both succeed).

The listings and the images live in other slots than a conversation, so they are updated
in separate steps, ordered so that a failure between two steps (a replica dying, Redis
failing over) can leave garbage but never lose or hide data:

- create: the images (bytes, then the conversation in their refs), then the listing
  member, then the conversation. A failure after the first step leaves an image referenced
  by a conversation that never came to be (kept for good: a leak); after the second, a
  listing member without a conversation, which `list` skips and removes once it is
  `_STALE_AFTER_US` old (younger, its conversation may still be being written).
- append: the images first, as for create; an append refused because the conversation
  does not exist releases them again. A turn refused as already recorded keeps them
  (another turn of the same conversation may carry the same image): a leak.
- delete: the conversation and its messages in one script (which returns what it deleted),
  then its listing member, then each image it named, each in its own script. A failure
  after the first step leaves a stale listing member (as above) and images that stay
  (a leak); the delete itself has happened, so it is logged, not reported as failed.
- an image is removed only by the script that takes the last conversation out of its
  refs, in the image's own slot, and a conversation is added to the refs (re-creating the
  bytes if they were just removed) before any message naming the image is written: a
  stored message never names an image that is gone.

The client never retries on its own: an append that timed out may have been applied, and
retrying it could store the turn twice. A failure surfaces as `StoreError` instead.
"""

from __future__ import annotations

import base64
import builtins
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import structlog

from modelrouter_server.context._records import (
    Stamps,
    appended,
    check_append,
    decode_page_token,
    encode_page_token,
    from_us,
    image_blobs,
    image_refs,
    message_fields,
    message_from_fields,
    metadata_from_json,
    metadata_json,
    new_conversation_id,
    normalized_page_size,
)
from modelrouter_server.context.store import (
    AppendResult,
    Conversation,
    ConversationPage,
    StoredMessage,
    SummaryRecord,
    new_conversation,
)
from modelrouter_server.domain import Message
from modelrouter_server.errors import ConversationNotFound, StoreError, TurnAlreadyRecorded
from modelrouter_server.quoting import quote
from modelrouter_server.redis_connection import REDIS_ERRORS, RedisClient, Script, open_client

log = structlog.get_logger(__name__)

# Larger than any microsecond timestamp for centuries; keeps members fixed-width.
_INVERT_FROM = 10**17 - 1

# A listing member this old whose conversation is missing is left over from a create or
# delete that failed half-way; younger, its conversation may still be being written (its
# age is by the creating replica's clock: replicas are assumed to agree within minutes).
_STALE_AFTER_US = 10 * 60 * 1_000_000

_APPEND = """
local conv, msgs, by, req = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TYPE', conv).ok
if t == 'none' then return {-1, -1} end
if t ~= 'hash' then return redis.error_reply('corrupt store: ' .. conv .. ' is a ' .. t) end
t = redis.call('TYPE', msgs).ok
if t ~= 'list' and t ~= 'none' then
  return redis.error_reply('corrupt store: ' .. msgs .. ' is a ' .. t)
end
t = redis.call('TYPE', by).ok
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('corrupt store: ' .. by .. ' is a ' .. t)
end
t = redis.call('TYPE', req).ok
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('corrupt store: ' .. req .. ' is a ' .. t)
end
local rid = ARGV[2]
if rid ~= '' and redis.call('HEXISTS', req, rid) == 1 then return {-2, -1} end
local base = redis.call('LLEN', msgs)
local n = tonumber(ARGV[3])
local summary = ARGV[4 + n]
local first = 5 + n
local apply = summary ~= '' and #ARGV >= first
if apply then
  for i = first, #ARGV do
    local seq = tonumber(ARGV[i])
    if seq == nil or seq < 0 or seq >= base or redis.call('HEXISTS', by, ARGV[i]) == 1 then
      apply = false
      break
    end
  end
end
for i = 1, n do redis.call('RPUSH', msgs, ARGV[3 + i]) end
if rid ~= '' then redis.call('HSET', req, rid, base) end
local summary_seq = -1
if apply then
  summary_seq = base + n
  redis.call('RPUSH', msgs, summary)
  for i = first, #ARGV do redis.call('HSET', by, ARGV[i], summary_seq) end
end
redis.call('HSET', conv, 'updated_us', ARGV[1])
return {base, summary_seq}
"""

# Scripts, not MULTI, for the reads and writes of one conversation that must be one step:
# redis-py's cluster MULTI blocks the event loop (it runs each queued command through
# asyncio.run in a thread and joins it), and a script is one round trip either way.
# ARGV: created_us, metadata, listing member, owner ('' = the default), then the messages.
_CREATE = """
local conv, msgs = KEYS[1], KEYS[2]
redis.call('HSET', conv, 'created_us', ARGV[1], 'updated_us', ARGV[1], 'metadata', ARGV[2],
  'member', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', conv, 'tenant', ARGV[4]) end
for i = 5, #ARGV do redis.call('RPUSH', msgs, ARGV[i]) end
return 1
"""

# The head, the messages and the summary links as one snapshot.
_GET = """
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
  redis.call('HGETALL', KEYS[3])}
"""

# Returns {0} (not found, or another owner's) or {1, listing member, the messages}: the
# messages are read in the same step as they are deleted, so no turn appended meanwhile
# can go without its images being released.
_DELETE = """
local conv = KEYS[1]
if redis.call('EXISTS', conv) == 0 then return {0} end
local owner = redis.call('HGET', conv, 'tenant') or ''
if owner ~= ARGV[1] then return {0} end
local member = redis.call('HGET', conv, 'member') or ''
local messages = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', conv, KEYS[2], KEYS[3], KEYS[4])
return {1, member, messages}
"""


# An image's bytes (base64) and the set of conversations using it share a hash tag, so each
# script below touches one slot; the conversation scripts never touch image keys. They are
# sent with EVAL, not EVALSHA: they are short, and a cluster pipeline cannot load a script
# a node does not yet have.
_PUT_IMAGE = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

_RELEASE_IMAGE = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return 1
"""


def _message_json(
    message: Message,
    tokens: int,
    created_us: int,
    summarizes: Sequence[int],
    request_id: str = "",
) -> str:
    fields = message_fields(message)
    fields.update(tokens=tokens, created_us=created_us, summarizes=list(summarizes))
    if request_id:
        fields["request_id"] = request_id
    return json.dumps(fields, separators=(",", ":"))


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    """HGETALL's reply inside a script: field, value, field, value..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _parts_of(raw: str) -> str:
    """The stored parts JSON of one stored message ('' when it has none)."""
    fields = json.loads(raw)
    return str(fields.get("parts") or "") if isinstance(fields, dict) else ""


def _stored_message(
    seq: int, raw: str, summarized_by: int | None, images: Mapping[str, bytes]
) -> StoredMessage:
    fields = json.loads(raw)
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    return StoredMessage(
        seq=seq,
        message=message_from_fields(fields, images),
        tokens=int(fields["tokens"]),
        created_at=from_us(int(fields["created_us"])),
        summarized_by=summarized_by,
        summarizes=tuple(int(s) for s in fields["summarizes"]),
        request_id=str(fields.get("request_id", "")),
    )


class RedisStore:
    """`ConversationStore` in Redis. Open with `await RedisStore.open(url)`."""

    def __init__(self, client: RedisClient, *, key_prefix: str, where: str) -> None:
        """Use `open`."""
        self._redis = client
        self._prefix = key_prefix
        self._where = where
        self._stamp = Stamps()
        self._create = Script(_CREATE)
        self._get = Script(_GET)
        self._append = Script(_APPEND)
        self._delete = Script(_DELETE)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        key_prefix: str = "modelrouter:",
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> RedisStore:
        """Connect to `url` (one server, or a cluster: `redis+cluster://`) and check that
        Redis answers; `StoreError` when it does not."""
        try:
            client, where = open_client(
                url, connect_timeout_s=connect_timeout_s, timeout_s=timeout_s
            )
        except ValueError as exc:
            raise StoreError(f"redis store: context.redis_url: {exc}") from None
        store = cls(client, key_prefix=key_prefix, where=where)
        try:
            await store._call("connect", client.ping())
        except BaseException:
            await client.aclose()
            raise
        return store

    def _index_of(self, owner: str) -> str:
        """The listing of one owner's conversations ("" keeps the original key)."""
        return f"{self._prefix}tenant:{owner}:conversations" if owner else self._index

    def _keys(self, conversation_id: str) -> tuple[str, str, str]:
        conv = f"{self._prefix}conv:{{{conversation_id}}}"
        return conv, f"{conv}:msgs", f"{conv}:by"

    @staticmethod
    def _check_id(conversation_id: str) -> None:
        """An id this store never makes (ids are hex) is not found, without asking Redis:
        an empty id or one with a brace would spread its keys over several hash slots."""
        if not conversation_id or "{" in conversation_id or "}" in conversation_id:
            raise ConversationNotFound(conversation_id)

    def _image_keys(self, digest: str) -> list[str]:
        image = f"{self._prefix}image:{{{digest}}}"
        return [image, f"{image}:refs"]

    async def _store_images(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Each image's bytes once, marked as used by the conversation; before the messages
        that refer to them are written, so no reader meets a reference without bytes."""
        blobs = image_blobs(messages)
        if not blobs:
            return
        pipe = self._redis.pipeline(transaction=False)
        for digest, data in blobs.items():
            encoded = base64.b64encode(data).decode("ascii")
            pipe.eval(_PUT_IMAGE, 2, *self._image_keys(digest), encoded, conversation_id)
        await self._call("store images", pipe.execute())

    async def _release_images(self, conversation_id: str, digests: set[str]) -> None:
        """Takes the conversation out of each image's refs; an image goes with the last
        conversation that uses it."""
        if not digests:
            return
        pipe = self._redis.pipeline(transaction=False)
        for digest in sorted(digests):
            pipe.eval(_RELEASE_IMAGE, 2, *self._image_keys(digest), conversation_id)
        await self._call(f"release images of {quote(conversation_id)}", pipe.execute())

    async def _load_images(self, what: str, raw_messages: Sequence[str]) -> dict[str, bytes]:
        wanted = sorted({d for raw in raw_messages for d in image_refs(_parts_of(raw))})
        if not wanted:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for digest in wanted:
            pipe.get(self._image_keys(digest)[0])
        found = await self._call(what, pipe.execute())
        return {d: base64.b64decode(v) for d, v in zip(wanted, found, strict=True) if v}

    def _request_key(self, conversation_id: str) -> str:
        return f"{self._prefix}conv:{{{conversation_id}}}:req"

    @property
    def _index(self) -> str:
        return f"{self._prefix}conversations"

    async def _call(self, what: str, pending: Any) -> Any:
        try:
            return await pending
        except REDIS_ERRORS as exc:
            raise StoreError(f"redis store {self._where}: {what} failed: {exc}") from exc

    def _corrupt(self, what: str, exc: Exception) -> StoreError:
        return StoreError(f"redis store {self._where}: {what}: unreadable data: {exc}")

    async def create(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, str],
        *,
        tokens: Sequence[int] | None = None,
        owner: str = "",
    ) -> Conversation:
        counts = check_append(messages, tokens)
        conversation_id = new_conversation_id()
        await self._store_images(conversation_id, messages)
        stamp = self._stamp()
        conv, msgs, _ = self._keys(conversation_id)
        member = f"{_INVERT_FROM - stamp:017d}:{conversation_id}"
        # Listed first: a failure before the conversation is written leaves a member that
        # `list` skips, never a conversation that no listing shows.
        await self._call("create", self._redis.zadd(self._index_of(owner), {member: 0}))
        args = [str(stamp), metadata_json(metadata), member, owner]
        args.extend(_message_json(m, n, stamp, ()) for m, n in zip(messages, counts, strict=True))
        await self._call("create", self._create(self._redis, keys=[conv, msgs], args=args))
        return new_conversation(conversation_id, messages, counts, metadata, from_us(stamp))

    async def get(self, conversation_id: str, *, owner: str = "") -> Conversation:
        self._check_id(conversation_id)
        conv, msgs, by = self._keys(conversation_id)
        what = f"get {quote(conversation_id)}"
        flat_head, raw_messages, flat_links = await self._call(
            what, self._get(self._redis, keys=[conv, msgs, by], args=[])
        )
        head, links = _pairs(flat_head), _pairs(flat_links)
        if not head or head.get("tenant", "") != owner:
            raise ConversationNotFound(conversation_id)
        try:
            images = await self._load_images(what, raw_messages)
            summarized = {int(k): int(v) for k, v in links.items()}
            messages = tuple(
                _stored_message(seq, raw, summarized.get(seq), images)
                for seq, raw in enumerate(raw_messages)
            )
            return self._conversation(conversation_id, head, messages, len(messages))
        except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
            raise self._corrupt(what, exc) from exc

    async def list(
        self, page_size: int = 0, page_token: str = "", *, owner: str = ""
    ) -> ConversationPage:
        size = normalized_page_size(page_size)
        start = "-"
        if page_token:
            created_us, after_id = decode_page_token(page_token)
            start = f"({_INVERT_FROM - created_us:017d}:{after_id}"
        members = cast(
            builtins.list[str],
            await self._call(
                "list",
                self._redis.zrangebylex(self._index_of(owner), start, "+", start=0, num=size + 1),
            ),
        )
        ids = [m.partition(":")[2] for m in members[:size]]
        pipe = self._redis.pipeline(transaction=False)
        for conversation_id in ids:
            conv, msgs, _ = self._keys(conversation_id)
            pipe.hgetall(conv)
            pipe.llen(msgs)
        replies = await self._call("list", pipe.execute()) if ids else []
        page: builtins.list[Conversation] = []
        missing: builtins.list[str] = []
        for i, conversation_id in enumerate(ids):
            head, count = replies[2 * i], replies[2 * i + 1]
            if not head:  # being created or deleted, or left over: leave it out
                missing.append(members[i])
                continue
            try:
                page.append(self._conversation(conversation_id, head, (), int(count)))
            except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
                # One damaged conversation must not hide every other one from every caller.
                log.warning(
                    "conversation_unreadable",
                    store=self._where,
                    conversation_id=quote(conversation_id),
                    error=str(exc),
                )
        await self._forget_stale(owner, missing)
        token = ""
        if len(members) > size:
            last = members[size - 1]
            inverted, _, last_id = last.partition(":")
            token = encode_page_token(_INVERT_FROM - int(inverted), last_id)
        return ConversationPage(tuple(page), token)

    async def _forget_stale(self, owner: str, members: Sequence[str]) -> None:
        """Removes listing members left by a create or delete that failed half-way: those
        whose conversation is missing and old enough not to be still being created."""
        oldest = time.time_ns() // 1000 - _STALE_AFTER_US
        stale = [m for m in members if _INVERT_FROM - int(m.partition(":")[0]) < oldest]
        if stale:
            await self._call("list", self._redis.zrem(self._index_of(owner), *stale))
            log.info("stale_listing_members_removed", store=self._where, count=len(stale))

    async def delete(self, conversation_id: str, *, owner: str = "") -> None:
        self._check_id(conversation_id)
        conv, msgs, by = self._keys(conversation_id)
        what = f"delete {quote(conversation_id)}"
        reply = await self._call(
            what,
            self._delete(
                self._redis,
                keys=[conv, msgs, by, self._request_key(conversation_id)],
                args=[owner],
            ),
        )
        if int(reply[0]) == 0:
            raise ConversationNotFound(conversation_id)
        member, raw_messages = str(reply[1]), reply[2]
        used: set[str] = set()
        for raw in raw_messages:
            try:
                used |= image_refs(_parts_of(raw))
            except (ValueError, KeyError, TypeError):
                continue  # an unreadable message cannot name its images; they stay
        # The conversation is gone: what follows only tidies up, so a failure is logged
        # (what it leaves is listed in the module docstring), not reported as a failed delete.
        try:
            if member:
                await self._call(what, self._redis.zrem(self._index_of(owner), member))
        except StoreError as exc:
            log.warning("conversation_listing_left", store=self._where, error=str(exc))
        try:
            await self._release_images(conversation_id, used)
        except StoreError as exc:
            log.warning("conversation_images_left", store=self._where, error=str(exc))

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[Message],
        *,
        tokens: Sequence[int] | None = None,
        summary: SummaryRecord | None = None,
        request_id: str = "",
    ) -> AppendResult:
        counts = check_append(messages, tokens)
        self._check_id(conversation_id)
        await self._store_images(conversation_id, messages)
        stamp = self._stamp()
        args: builtins.list[str] = [str(stamp), request_id, str(len(messages))]
        args.extend(
            _message_json(m, n, stamp, (), request_id)
            for m, n in zip(messages, counts, strict=True)
        )
        # A summary replacing a seq twice is malformed: it is not sent, so it is not stored.
        if summary is not None and len(set(summary.replaces)) == len(summary.replaces):
            args.append(_message_json(summary.message, summary.tokens, stamp, summary.replaces))
            args.extend(str(seq) for seq in summary.replaces)
        else:
            args.append("")
        reply = await self._call(
            f"append to {quote(conversation_id)}",
            self._append(
                self._redis,
                keys=[*self._keys(conversation_id), self._request_key(conversation_id)],
                args=args,
            ),
        )
        base, summary_seq = int(reply[0]), int(reply[1])
        if base == -2:
            raise TurnAlreadyRecorded(conversation_id, request_id)
        if base < 0:
            # No such conversation, so none of its messages names these images.
            await self._release_images(conversation_id, set(image_blobs(messages)))
            raise ConversationNotFound(conversation_id)
        return appended(
            messages,
            counts,
            base=base,
            stamp=stamp,
            request_id=request_id,
            summary=summary,
            summary_seq=summary_seq if summary_seq >= 0 else None,
        )

    async def aclose(self) -> None:
        await self._redis.aclose()

    @staticmethod
    def _conversation(
        conversation_id: str,
        head: Mapping[str, str],
        messages: tuple[StoredMessage, ...],
        count: int,
    ) -> Conversation:
        return Conversation(
            id=conversation_id,
            created_at=from_us(int(head["created_us"])),
            updated_at=from_us(int(head["updated_us"])),
            metadata=metadata_from_json(head["metadata"]),
            messages=messages,
            message_count=count,
        )
