"""Serve "top-n items for this user" from a saved model over HTTP (standard library only).

The app loads a model file written by ``model.save(path)`` or ``diffmm fit ... --out path``
once, then answers

* ``GET /recommend?user=ID&n=10`` with ``{"user": ID, "items": [...], "scores": [...]}``
  (the user's training items excluded; 400 for a bad request, 404 for an unknown user);
* ``GET /health`` with the model's size.

It binds to 127.0.0.1 only: it has no authentication, TLS or rate limiting, so put a real web
server in front of it before exposing it to anyone else. Scoring a user is a dot product with
every item, cheap enough to answer in the request thread.

Examples::

    diffmm fit data/ --out model.diffmm
    python examples/serve_recommendations.py model.diffmm --port 8000
    curl 'http://127.0.0.1:8000/recommend?user=0&n=5'

    # Fit a small model, serve it on a free port, query it, shut down:
    python examples/serve_recommendations.py --self-test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np

from diffmm import DiffMMRecommender, UnknownIdError
from diffmm.datasets import make_synthetic

HOST = "127.0.0.1"
MAX_N = 1000


def parse_user(text: str, model: DiffMMRecommender) -> Any:
    """Query strings are text; give the id the type of the model's user ids."""
    if model.user_ids_.dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise UnknownIdError(f"unknown user {text!r}: user ids are integers") from None
    return text


def top_n(model: DiffMMRecommender, user: Any, n: int) -> dict[str, Any]:
    items, scores = model.recommend([user], n=min(n, model.n_items_))
    keep = np.isfinite(scores[0])  # -inf marks padding: fewer candidates than n
    return {
        "user": user,
        "items": items[0][keep].tolist(),
        "scores": [round(float(s), 6) for s in scores[0][keep]],
    }


def make_handler(model: DiffMMRecommender) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/health":
                self._reply(
                    HTTPStatus.OK,
                    {"status": "ok", "n_users": model.n_users_, "n_items": model.n_items_},
                )
                return
            if url.path != "/recommend":
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
                return
            if "user" not in query:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "missing the user parameter"})
                return
            try:
                n = int(query.get("n", ["10"])[0])
                if not 1 <= n <= MAX_N:
                    raise ValueError
            except ValueError:
                self._reply(
                    HTTPStatus.BAD_REQUEST, {"error": f"n must be an integer in [1, {MAX_N}]"}
                )
                return
            try:
                answer = top_n(model, parse_user(query["user"][0], model), n)
            except UnknownIdError as exc:
                self._reply(HTTPStatus.NOT_FOUND, {"error": str(exc)})
                return
            self._reply(HTTPStatus.OK, answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the console for the answers; a real app would log requests

    return Handler


def make_server(model_path: str | Path, port: int = 0) -> ThreadingHTTPServer:
    """Load the model and bind a server on 127.0.0.1 (``port=0``: a free port)."""
    model = DiffMMRecommender.load(model_path)
    server = ThreadingHTTPServer((HOST, port), make_handler(model))
    server.model = model  # type: ignore[attr-defined]
    return server


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def self_test(model_path: str | Path | None, args: argparse.Namespace) -> int:
    """Serve on an ephemeral loopback port in a thread, query it, shut it down."""
    with tempfile.TemporaryDirectory() as tmp:
        if model_path is None:
            data = make_synthetic(n_users=args.users, n_items=args.items, random_state=0)
            model = DiffMMRecommender(
                epochs=args.epochs, denoiser_hidden_dims=(256,), random_state=0
            ).fit(data.train, data.features, validation_data=data.validation)
            model_path = model.save(Path(tmp) / "model.diffmm")
            print(f"Fitted a model on {data.n_users} users x {data.n_items} items")
        server = make_server(model_path, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://{HOST}:{server.server_address[1]}"
        print(f"Serving on {base}")
        ok = True
        try:
            status, health = get(f"{base}/health")
            print(f"GET /health -> {status} {health}")
            ok &= status == 200
            first, second = server.model.user_ids_[:2].tolist()
            for params, expected in (
                ({"user": first, "n": 5}, 200),
                ({"user": first}, 200),  # n defaults to 10
                ({"user": second, "n": 3}, 200),
                ({"user": "no-such-user"}, 404),
                ({"n": 5}, 400),
            ):
                query = urlencode(params)
                status, body = get(f"{base}/recommend?{query}")
                print(f"GET /recommend?{query} -> {status} {body}")
                ok &= status == expected
                if status == 200:
                    ok &= len(body["items"]) == min(params.get("n", 10), health["n_items"])
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
        print("Self-test passed" if ok else "Self-test FAILED")
        return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve top-n recommendations over HTTP.")
    parser.add_argument("model", nargs="?", help="a saved model file (*.diffmm)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="start on a free port, make a few requests, print the answers and stop "
        "(fits a small synthetic model when no MODEL is given)",
    )
    # The self-test's model only needs to exist: it is small and quick to fit.
    parser.add_argument("--users", type=int, default=300, help="self-test model users (300)")
    parser.add_argument("--items", type=int, default=200, help="self-test model items (200)")
    parser.add_argument("--epochs", type=int, default=5, help="self-test model epochs (5)")
    args = parser.parse_args(argv)

    if args.self_test:
        return self_test(args.model, args)
    if args.model is None:
        parser.error("give a MODEL file to serve, or --self-test")
    server = make_server(args.model, port=args.port)
    host, port = server.server_address[:2]
    print(f"Serving {args.model} on http://{host}:{port}/recommend?user=ID&n=10", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
