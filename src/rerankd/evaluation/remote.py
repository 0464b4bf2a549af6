"""Systems served by a running rerankd (`--url`), through the SDK's SIE score call.

One request per query, one at a time: the server batches it exactly as the in-process engine
does, so both give the same scores. MODEL is a name the server serves; ADAPTER the name of an
adapter loaded on it (`PUT /v1/models/{m}/adapters/{a}`, or `rerankd finetune --serve-to`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rerankd.client import APIError, Client, ConnectionFailed
from rerankd.evaluation.errors import BadInput
from rerankd.evaluation.systems import SystemSpec


@dataclass
class RemoteScorer:
    url: str
    api_key: str | None = None
    timeout: float = 600.0
    _client: Client | None = None

    def _fail(self, error: APIError, what: str) -> BadInput:
        if isinstance(error, ConnectionFailed):
            return BadInput(f"cannot reach the server at {self.url}: {error.message}")
        return BadInput(f"{what}: the server at {self.url} answered {error.status} {error.code}: {error.message}")

    def open(self, systems: list[SystemSpec]) -> None:
        self._client = Client(self.url, api_key=self.api_key, timeout=self.timeout)
        for system in systems:
            try:
                info = self._client.get_model(system.model)
            except APIError as error:
                if error.status == 404:
                    served = ", ".join(model["name"] for model in self._list_models()) or "nothing"
                    raise BadInput(
                        f"the server at {self.url} has no model {system.model!r} (it serves {served})"
                    ) from None
                raise self._fail(error, f"--model {system.model}") from None
            adapters = {adapter["name"] for adapter in info.get("adapters") or []}
            if system.adapter is not None and system.adapter not in adapters:
                raise BadInput(
                    f"model {system.model!r} on {self.url} has no adapter {system.adapter!r} "
                    f"(loaded: {', '.join(sorted(adapters)) or 'none'}); with --url, ADAPTER names an adapter the "
                    f"server has loaded (PUT /v1/models/{system.model}/adapters/{system.adapter})"
                )

    def _list_models(self) -> list[dict]:
        assert self._client is not None
        try:
            return self._client.list_models()
        except APIError:
            return []

    def score(self, system: SystemSpec, query: str, texts: list[str]) -> list[float]:
        assert self._client is not None
        model = f"{system.model}:{system.adapter}" if system.adapter else system.model
        items = [{"id": str(index), "text": text} for index, text in enumerate(texts)]
        try:
            result = self._client.score(model, {"text": query}, items)
        except APIError as error:
            raise self._fail(error, system.label) from None
        scores = [0.0] * len(texts)
        for entry in result.scores:
            scores[int(entry.item_id)] = float(entry.score)
        return scores

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
