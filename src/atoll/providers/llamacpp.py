"""An embedded GGUF model run in-process by ``llama-cpp-python``: atoll's default LLM.

Threading. A ``llama_cpp.Llama`` is not thread-safe and generation is CPU-bound, so:

- all llama.cpp work (loading, chat turns, embeddings) runs on ONE long-lived worker thread of the
  provider's own. Not just for safety: llama.cpp parallelises with OpenMP, whose thread team
  belongs to the calling thread, and once a second thread has computed, every team runs at about
  40 % speed (measured: 80 → 30 tokens/s for SmolLM2 on 2 cores);
- a chat turn streams its events back to the event loop one token at a time, so the loop
  (``/health``, other requests) stays free while the model works;
- work is serialised by one lock held on the event-loop side, so waiting requests hold no thread
  and a waiting request that is cancelled simply leaves the queue;
- when the consumer stops iterating (a client disconnect), a flag checked between tokens stops the
  generation, and the lock is released only once the worker has finished the turn.

Prompting. The prompt is rendered with the model's own chat template (from the GGUF metadata, the
template ``create_chat_completion`` would use) and handed to ``create_completion`` as tokens. This
is ``create_chat_completion`` unrolled by one step, for two reasons: the prompt token count is then
exact, and ``create_completion`` accepts stopping criteria, which is how cancellation stops the
generation loop between tokens. ``format`` becomes a llama.cpp grammar, as ``response_format``
would: any JSON object for ``"json"``, the schema's grammar for a JSON Schema.

Tools. SmolLM2-135M cannot call tools reliably, so replies are never parsed into tool calls. Tools
are still handed to the chat template, so a GGUF whose template renders tools at least sees them;
``profile.supports_tools`` is False so the layers above know the calls will not come back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, closing
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from atoll.errors import ProviderError, ProviderNotInstalled
from atoll.messages import (
    Finished,
    GenerationOptions,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    Usage,
)
from atoll.providers.gguf import DEFAULT_N_CTX, DEFAULT_N_THREADS, INSTALL_HINT, profile_for, resolve_model_path

try:
    import llama_cpp
    from llama_cpp import llama_chat_format, llama_grammar
except ImportError as exc:
    raise ProviderNotInstalled(f"{INSTALL_HINT} ({exc})") from exc

if TYPE_CHECKING:
    from atoll.config import LLMConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Reply length when neither the agent (``llm.max_tokens``) nor the request (``num_predict``) sets
#: one. Small local models often never emit an end token and would otherwise fill the context.
DEFAULT_MAX_TOKENS = 512
# Ollama's defaults, used when neither the request nor the agent sets them.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.9
DEFAULT_TOP_K = 40
DEFAULT_REPEAT_PENALTY = 1.1
#: Used only for a GGUF without a chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Ollama option names (``options.extra``) that llama.cpp's sampler understands.
_EXTRA_SAMPLING = {
    "min_p": "min_p", "typical_p": "typical_p", "tfs_z": "tfs_z", "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta",
}


class LlamaCppProvider:
    """The embedded model. ``llm.model_path`` picks the GGUF (default: SmolLM2-135M-Instruct);
    ``llm.extra.n_threads`` the CPU threads (default 2)."""

    name = "local"
    base_url: str | None = None

    def __init__(self, config: LLMConfig) -> None:
        self.model_path = resolve_model_path(config.model_path)
        self.model: str = config.model or self.model_path.stem
        self.n_ctx = config.context_length or DEFAULT_N_CTX
        self.n_threads = int(config.extra.get("n_threads", DEFAULT_N_THREADS))
        self.profile = profile_for(self.model_path, self.n_ctx)
        self._defaults = GenerationOptions(
            temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS
        )
        self._llm: llama_cpp.Llama | None = None
        self._formatter: llama_chat_format.Jinja2ChatFormatter | None = None
        self._embedder: llama_cpp.Llama | None = None
        self._lock = anyio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-llamacpp")

    async def start(self) -> None:
        """Load the model once, off the event loop."""
        if self._llm is not None:
            return
        started = time.perf_counter()
        async with self._lock:
            self._llm = await self._on_worker(self._load, False)
        self._formatter = _chat_formatter(self._llm)
        self.profile.context_length = self._llm.n_ctx()
        self.profile.embedding_length = self._llm.n_embd()
        logger.info("loaded %s in %.2f s", self.model_path.name, time.perf_counter() - started)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """One chat turn on the llama.cpp thread; the caller's loop stays free. See the module doc."""
        if self._llm is None or self._formatter is None:
            raise ProviderError("the local model is not loaded; call start() first", model=self.model)
        turn = _Turn(self._llm, self._formatter, request, request.options.merged_over(self._defaults))
        # aclosing: the turn must be over on the worker before the lock is released, even
        # when our own consumer stops early and closes this generator.
        async with self._lock, aclosing(turn.events(self._worker)) as events:
            async for event in events:
                yield event

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """L2-normalised mean-pooled vectors from a second instance loaded with ``embedding=True``
        on first use (a generation context cannot embed)."""
        if not texts:
            return []
        async with self._lock:
            return await self._on_worker(self._embed_sync, texts)

    async def aclose(self) -> None:
        """Free the models once any running turn has finished, then let the worker thread end."""
        async with self._lock:
            if self._llm is None and self._embedder is None:
                return
            await self._on_worker(self._close_models)
        self._worker.shutdown(wait=False)

    async def _on_worker(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the llama.cpp thread. Shielded: the model must not be released to
        the next request while a call is still running on it."""
        future = asyncio.wrap_future(self._worker.submit(func, *args))
        with anyio.CancelScope(shield=True):
            await asyncio.wait([future])
        return future.result()

    def _close_models(self) -> None:
        for llm in (self._llm, self._embedder):
            if llm is not None:
                llm.close()
        self._llm = self._embedder = None

    def _load(self, embedding: bool) -> llama_cpp.Llama:
        extra: dict[str, Any] = {}
        if embedding:
            extra = {"embedding": True, "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN}
        try:
            return llama_cpp.Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                verbose=False, **extra,
            )
        except (ValueError, RuntimeError) as exc:
            raise ProviderError(f"cannot load {self.model_path}: {exc}", model=self.model) from exc

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            self._embedder = self._load(True)
        try:
            vectors = self._embedder.embed(texts, truncate=True)
        except (ValueError, RuntimeError) as exc:
            raise ProviderError(f"embedding failed: {exc}", model=self.model) from exc
        return [_l2_normalised(vector) for vector in vectors]


class _ConsumerGone(Exception):
    """The event loop that wanted the tokens has closed."""


class _Turn:
    """One chat turn: run on the llama.cpp thread, its events sent to the event loop as they come."""

    def __init__(self, llm: llama_cpp.Llama, formatter: llama_chat_format.Jinja2ChatFormatter,
                 request: ModelRequest, options: GenerationOptions) -> None:
        self._llm = llm
        self._formatter = formatter
        self._request = request
        self._options = options
        self._cancelled = threading.Event()

    async def events(self, worker: ThreadPoolExecutor) -> AsyncGenerator[ModelEvent, None]:
        """Run the turn on ``worker`` and relay what it produces until ``Finished`` or an error."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ModelEvent | ProviderError | None] = asyncio.Queue()
        done = worker.submit(self._run, loop, queue)
        finished = False
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, ProviderError):
                    raise item
                finished = isinstance(item, Finished)
                yield item
        finally:
            self._cancelled.set()
            with anyio.CancelScope(shield=True):
                await asyncio.wrap_future(done)
        if not finished:
            raise ProviderError("the local model stopped without finishing its reply")

    def _run(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        """The worker thread's top: everything it produces, errors included, goes to ``queue``,
        then ``None``.

        Hand-offs do not wait for the event loop, so a busy loop never stalls the generation.
        """
        def put(item: ModelEvent | ProviderError | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError as exc:  # the loop is closed: nobody is listening any more
                raise _ConsumerGone from exc

        try:
            try:
                for event in self._generate():
                    put(event)
            except ProviderError as err:
                put(err)
            except _ConsumerGone:
                raise
            except Exception as exc:
                logger.exception("local generation failed")
                put(_failure(exc))
            put(None)
        except _ConsumerGone:
            logger.debug("event loop closed during local generation")

    def _generate(self) -> Iterator[ModelEvent]:
        started = time.perf_counter_ns()
        rendered = self._render()
        prompt = self._llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                    special=True)
        stopping = llama_cpp.StoppingCriteriaList([lambda _ids, _logits: self._cancelled.is_set()])
        stopping.extend(rendered.stopping_criteria or [])
        try:
            chunks = self._llm.create_completion(
                prompt=prompt, stream=True, stop=self._stops(rendered.stop),
                stopping_criteria=stopping, grammar=_grammar(self._request.format),
                **_sampling(self._options),
            )
            yield from self._stream_chunks(chunks, prompt, started)
        except ValueError as exc:  # e.g. "Requested tokens (N) exceed context window of M"
            raise ProviderError(str(exc), status=400) from exc
        except RuntimeError as exc:
            raise _failure(exc) from exc

    def _stream_chunks(self, chunks: Any, prompt: list[int], started: int) -> Iterator[ModelEvent]:
        text: list[str] = []
        reason = "stop"
        first_at = 0
        with closing(chunks):
            for chunk in chunks:
                if self._cancelled.is_set():
                    return
                first_at = first_at or time.perf_counter_ns()
                choice = chunk["choices"][0]
                if choice["text"]:
                    text.append(choice["text"])
                    yield TextDelta(choice["text"])
                if choice["finish_reason"] == "length":
                    reason = "length"
        ended = time.perf_counter_ns()
        first_at = first_at or ended
        completion = self._options.max_tokens if reason == "length" else self._count_tokens("".join(text))
        usage = Usage(prompt_tokens=len(prompt), completion_tokens=completion or 0,
                      prompt_eval_duration_ns=first_at - started, eval_duration_ns=ended - first_at)
        yield Finished(reason="length" if reason == "length" else "stop", usage=usage)

    def _render(self) -> llama_chat_format.ChatFormatterResponse:
        # Plain dicts in the OpenAI shape the templates expect (llama_cpp's TypedDicts are stricter).
        tools: Any = [_tool_for_template(t) for t in self._request.tools] or None
        messages: Any = [_message_for_template(m) for m in self._request.messages]
        try:
            return self._formatter(messages=messages, tools=tools)
        except Exception as exc:  # the template is code from the GGUF: any error is a bad request
            raise ProviderError(f"the model's chat template failed: {exc}", status=400) from exc

    def _stops(self, template_stop: str | list[str] | None) -> list[str]:
        stops = list(self._options.stop or [])
        if isinstance(template_stop, str):
            template_stop = [template_stop]
        return stops + [s for s in template_stop or [] if s]

    def _count_tokens(self, text: str) -> int:
        """The reply's length in tokens, re-tokenised (streamed chunks can merge tokens)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0


# ---- pieces ---------------------------------------------------------------------------------


def _chat_formatter(llm: llama_cpp.Llama) -> llama_chat_format.Jinja2ChatFormatter:
    """The GGUF's own chat template, set up as ``Llama`` itself sets it up for chat completions."""
    template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
    eos, bos = llm.token_eos(), llm.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llm.detokenize([eos], special=True).decode("utf-8", "replace") if eos != -1 else "",
        bos_token=llm.detokenize([bos], special=True).decode("utf-8", "replace") if bos != -1 else "",
        stop_token_ids=[eos] if eos != -1 else None,
    )


def _message_for_template(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["name"] = message.tool_name or ""
        out["tool_call_id"] = message.tool_call_id or ""
    return out


def _tool_for_template(tool: Any) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}


def _sampling(options: GenerationOptions) -> dict[str, Any]:
    """Neutral options as ``create_completion`` keyword arguments."""
    kwargs: dict[str, Any] = {
        "max_tokens": options.max_tokens if options.max_tokens and options.max_tokens > 0 else None,
        "temperature": _pick(options.temperature, DEFAULT_TEMPERATURE),
        "top_p": _pick(options.top_p, DEFAULT_TOP_P),
        "top_k": _pick(options.top_k, DEFAULT_TOP_K),
        "repeat_penalty": _pick(options.repeat_penalty, DEFAULT_REPEAT_PENALTY),
        "presence_penalty": _pick(options.presence_penalty, 0.0),
        "frequency_penalty": _pick(options.frequency_penalty, 0.0),
        "seed": options.seed,
    }
    for name, native in _EXTRA_SAMPLING.items():
        if options.extra.get(name) is not None:
            kwargs[native] = options.extra[name]
    return kwargs


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _grammar(response_format: Any) -> llama_grammar.LlamaGrammar | None:
    """``"json"`` → any JSON value; a dict → that JSON Schema's grammar."""
    if response_format is None:
        return None
    if response_format == "json":
        return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    try:
        return llama_grammar.LlamaGrammar.from_json_schema(json.dumps(response_format), verbose=False)
    except Exception as exc:  # the converter raises assorted errors on schemas it can't handle
        raise ProviderError(f"unsupported JSON schema in format: {exc}", status=400) from exc


def _l2_normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def _failure(exc: BaseException) -> ProviderError:
    error = ProviderError(f"local model failed: {exc}")
    error.__cause__ = exc
    return error
