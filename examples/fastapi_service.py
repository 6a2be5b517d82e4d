"""A small HTTP recommendation service with FastAPI, on a light serving file (no torch).

Export the model once, where it was trained::

    model.export_serving("model.serving")      # or: diffmm fit ... then export in Python

then serve it (``pip install "diffmm[serve]"`` installs FastAPI and uvicorn)::

    python examples/fastapi_service.py model.serving --port 8000
    curl 'http://127.0.0.1:8000/recommend?user=0&n=5'
    curl 'http://127.0.0.1:8000/similar?item=3&n=5'

The app answers

* ``GET /recommend?user=ID&n=10`` with ``{"user": ID, "items": [...], "scores": [...]}`` (the
  user's training items left out);
* ``GET /similar?item=ID&n=10`` with ``{"item": ID, "items": [...], "scores": [...]}``;
* ``POST /recommend_new`` with ``{"history": [item ids], "n": 10}``: a user the model never
  saw, folded in from their history;
* ``GET /health`` with the model's size.

Unknown ids get 404, bad arguments 422 (FastAPI's validation) or 400. The service imports
diffmm.serving only: NumPy and SciPy, never torch, so it starts fast and stays small. It binds
to 127.0.0.1; put a real web server in front of it before exposing it.

``--self-test`` fits a tiny model, exports it and queries the app through FastAPI's test
client.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations,
# including the request body's model defined inside create_app.
import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffmm import InvalidInputError, UnknownIdError, serving


def create_app(path: str | Path) -> Any:
    """A FastAPI app answering from the serving file at ``path`` (loaded once)."""
    from fastapi import FastAPI, HTTPException, Query
    from pydantic import BaseModel

    model = serving.load(path)
    app = FastAPI(title="diffmm recommendations", version="1")

    def as_id(raw: str, known: np.ndarray) -> Any:
        # Query strings are text; integer ids are looked up as integers.
        if known.dtype.kind in "iu":
            try:
                return int(raw)
            except ValueError:
                raise HTTPException(404, f"no such id {raw!r}: ids are integers") from None
        return raw

    def answer(call) -> tuple[list, list]:
        try:
            ids, scores = call()
        except UnknownIdError as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidInputError as exc:
            raise HTTPException(400, str(exc)) from None
        keep = np.isfinite(scores[0])  # padding: fewer candidates than n
        return ids[0][keep].tolist(), scores[0][keep].astype(float).tolist()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"users": model.n_users_, "items": model.n_items_, "model": model.source_class}

    @app.get("/recommend")
    def recommend(user: str, n: int = Query(10, ge=1, le=1000)) -> dict[str, Any]:
        uid = as_id(user, model.user_ids_)
        items, scores = answer(lambda: model.recommend([uid], n=n))
        return {"user": uid, "items": items, "scores": scores}

    @app.get("/similar")
    def similar(item: str, n: int = Query(10, ge=1, le=1000)) -> dict[str, Any]:
        iid = as_id(item, model.item_ids_)
        items, scores = answer(lambda: model.similar_items([iid], n=n))
        return {"item": iid, "items": items, "scores": scores}

    class History(BaseModel):
        history: list[int | str]
        n: int = 10

    @app.post("/recommend_new")
    def recommend_new(body: History) -> dict[str, Any]:
        if not 1 <= body.n <= 1000:
            raise HTTPException(400, "n must be between 1 and 1000")
        items, scores = answer(lambda: model.recommend_new_users([body.history], n=body.n))
        return {"items": items, "scores": scores}

    return app


def _self_test() -> None:
    from fastapi.testclient import TestClient

    from diffmm import LightGCNRecommender
    from diffmm.datasets import make_synthetic

    data = make_synthetic(n_users=60, n_items=40, random_state=0)
    model = LightGCNRecommender(epochs=2, random_state=0).fit(data.train)
    with tempfile.TemporaryDirectory() as folder:
        path = model.export_serving(Path(folder) / "model.serving")
        client = TestClient(create_app(path))
        print("health:", client.get("/health").json())
        print("recommend:", client.get("/recommend", params={"user": 0, "n": 3}).json())
        print("similar:", client.get("/similar", params={"item": 5, "n": 3}).json())
        print("unknown user:", client.get("/recommend", params={"user": 999}).status_code)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("serving_file", nargs="?", help="a file written by export_serving")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if args.self_test:
        _self_test()
        return
    if args.serving_file is None:
        parser.error("give a serving file (or --self-test)")
    import uvicorn

    uvicorn.run(create_app(args.serving_file), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
