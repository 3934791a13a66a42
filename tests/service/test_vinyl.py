"""The vinyl example: one process or five by changing only the deployment file; Node.js inside."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reckon.service import Unit

VINYL = Path(__file__).resolve().parents[2] / "examples" / "vinyl"
sys.path.insert(0, str(VINYL))

import shop  # noqa: E402

EXPECTED = [
    "Blue Train by John Coltrane (1957) $29.00, 1 in stock; "
    "you may also like: Kind of Blue, A Love Supreme",
    "anonymous buy: UNAUTHENTICATED",
    "order 1: alice bought bt for 2900",
    "live stock of bt: 1 -> 0",
    "second copy: FAILED_PRECONDITION",
    "alice has 1 order(s)",
]
MODULES = [
    f"vinyl_api.vinyl.{n}_pb2"
    for n in ("catalog", "inventory", "orders", "recommendations", "storefront")
]


# What a code generator stamps with its own version: the same .proto gives the same code whatever
# the generator's patch release, apart from these.
_GENERATOR_STAMPS = [
    (re.compile(rb"^# Protobuf Python Version: .*$", re.M), b"# Protobuf Python Version: *"),
    (
        re.compile(
            rb"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.\w+,)[^']*'[^']*',"
        ),
        rb"\1 *,",
    ),
    (re.compile(rb"^GRPC_GENERATED_VERSION = .*$", re.M), b"GRPC_GENERATED_VERSION = *"),
]


def _semantic(code: bytes) -> bytes:
    """Generated code with the generator's version stamps taken out."""
    for pattern, replacement in _GENERATOR_STAMPS:
        code = pattern.sub(replacement, code)
    return code


def test_semantic_comparison_ignores_only_the_generators_version() -> None:
    committed = (VINYL / "vinyl_api" / "vinyl" / "catalog_pb2.py").read_bytes()
    bumped = re.sub(rb"Version: (\d+)\.(\d+)\.\d+", rb"Version: \1.\2.99", committed)
    bumped = re.sub(rb"(Domain\.PUBLIC,\s*\d+,\s*\d+,\s*)\d+", rb"\g<1>99", bumped)
    assert bumped != committed and _semantic(bumped) == _semantic(committed)
    grpc_code = (VINYL / "vinyl_api" / "vinyl" / "catalog_pb2_grpc.py").read_bytes()
    grpc_bumped = re.sub(
        rb"GRPC_GENERATED_VERSION = '[^']*'", b"GRPC_GENERATED_VERSION = '9.9.9'", grpc_code
    )
    assert grpc_bumped != grpc_code and _semantic(grpc_bumped) == _semantic(grpc_code)
    # A change to what the code means is still a difference.
    renamed = committed.replace(b"catalog.proto", b"katalog.proto")
    assert _semantic(renamed) != _semantic(committed)


@pytest.fixture
def node_path(node_modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (VINYL / "recommendations" / "node_modules").exists():
        monkeypatch.setenv("NODE_PATH", str(node_modules))


def test_committed_code_and_docs_match_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "vinyl_api"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reckon.cli",
            "svc",
            "gen",
            *sorted(map(str, (VINYL / "protos" / "vinyl").glob("*.proto"))),
            "-I",
            str(VINYL / "protos"),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    # Regenerated with the locked generators, compared for meaning: the generator's own version
    # stamps may differ from those of the run that wrote the committed code.
    fresh = {p.relative_to(out): _semantic(p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(VINYL / "vinyl_api"): _semantic(p.read_bytes())
        for p in (VINYL / "vinyl_api").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert fresh.keys() == committed.keys(), (
        "run the `reckon svc gen` line of examples/vinyl/README.md"
    )
    for name, code in fresh.items():
        assert code == committed[name], (
            f"{name} differs: run `reckon svc gen` (examples/vinyl/README.md)"
        )
    from reckon.service.docgen import markdown

    api = (VINYL / "docs" / "api.md").read_text()
    assert markdown(MODULES) == api
    assert "Takes copies off the shelf" in api  # .proto comments reach the docs


@pytest.mark.parametrize("deploy", ["deploy.toml", "deploy-split.toml"])
async def test_the_same_session_in_one_process_and_split(
    deploy: str, node_path: None, tmp_path: Path
) -> None:
    async with Unit(shop.load(deploy, tmp_path / "data")) as unit:
        placements = {n: s["placement"] for n, s in unit.status().items()}
        assert await shop.session(unit) == EXPECTED
    python = {n: p for n, p in placements.items() if n != "recommendations"}
    want = "inprocess" if deploy == "deploy.toml" else "process"
    assert set(python.values()) == {want} and placements["recommendations"] == "process"
    receipts = list((tmp_path / "data" / "orders" / "files" / "receipts").iterdir())
    assert [p.read_text() for p in receipts] == [
        "alice bought 1 x John Coltrane - Blue Train: $29.00\n"
    ]


async def test_storefront_over_connect_with_curl_and_node_restart(
    node_path: None, tmp_path: Path
) -> None:
    async with Unit(shop.load("deploy.toml", tmp_path / "data")) as unit:
        base = unit.addresses["storefront"].connect

        def curl(*args: str) -> str:
            if shutil.which("curl") is None:  # the same request with urllib
                return _urllib(*args)
            return subprocess.run(
                ["curl", "-s", "-H", "Content-Type: application/json", *args],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout

        page = await asyncio.to_thread(
            curl, "-d", '{"record_id": "kob"}', f"{base}/vinyl.Storefront/RecordPage"
        )
        body = json.loads(page)
        assert body["record"]["title"] == "Kind of Blue" and body["copiesInStock"] == 2
        assert [r["title"] for r in body["recommended"]] == ["Blue Train", "A Love Supreme"]
        bought = await asyncio.to_thread(
            curl,
            "-u",
            "alice:wonderland",
            "-d",
            '{"record_id": "ar"}',
            f"{base}/vinyl.Storefront/Buy",
        )
        assert json.loads(bought)["customer"] == "alice"
        node = unit.children["recommendations"]
        os.kill(node.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        for _ in range(600):
            if node.restarts == 1 and node.state == "running":
                break
            await asyncio.sleep(0.05)
        assert node.restarts == 1 and node.state == "running"
        page = await asyncio.to_thread(
            curl, "-d", '{"record_id": "bt"}', f"{base}/vinyl.Storefront/RecordPage"
        )
        assert "Kind of Blue" in page


def test_deterministic_run_with_a_mocked_node_service() -> None:
    from vinyl_api.vinyl.catalog_pb2 import Record, RecordList
    from vinyl_api.vinyl.recommendations_reckon import Recommendations

    from reckon.service import Deployment
    from reckon.testing import Harness, mock

    def once() -> tuple[list[str], str]:
        recs = mock(Recommendations)
        recs.Recommend.returns(
            RecordList(
                records=[
                    Record(id="kob", title="Kind of Blue"),
                    Record(id="als", title="A Love Supreme"),
                ]
            )
        )
        h = Harness(Deployment.load(VINYL / "deploy.toml"), mocks={"recommendations": recs})
        return h.run(shop.session), h.trace_text()

    first, trace = once()
    assert first == EXPECTED
    assert once() == (first, trace)
    assert '"callee":"inventory","caller":"orders","end"' in trace  # Reserve, nested in an order


def _urllib(*args: str) -> str:
    """``curl [-u user:pw] -d BODY URL`` without curl."""
    import base64
    import urllib.request

    opts = dict(zip(args[:-1:2], args[1:-1:2], strict=True))
    headers = {"Content-Type": "application/json"}
    if "-u" in opts:
        headers["Authorization"] = "Basic " + base64.b64encode(opts["-u"].encode()).decode()
    req = urllib.request.Request(args[-1], data=opts["-d"].encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode()


def _readme_blocks() -> list[tuple[str, str]]:
    import re

    text = (VINYL / "README.md").read_text()
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def _announced_port(proc: subprocess.Popen[str], name: str) -> tuple[int, list[str]]:
    """The port (for every protocol) that `reckon svc run` prints for service ``name`` once the
    unit is ready (it reads back what it bound), and the lines printed up to there."""
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # ends when the process does
        seen.append(line)
        found = re.match(rf"{name}\s+\w+\s+http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1)), seen
        assert not line.startswith(f"{name} "), f"{name} has no address: {''.join(seen)}"
    raise AssertionError(f"`reckon svc run` ended before announcing {name}: {''.join(seen)}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_walkthrough_runs_as_written(node_modules: Path, tmp_path: Path) -> None:
    """Every shell command of examples/vinyl/README.md, run as written in a copy of the example
    (the generated package and docs removed first, so `reckon svc gen` / `svc docs` rebuild
    them). The one exception is `npm install`, replaced by a link to the test's node_modules."""
    import time

    work = tmp_path / "vinyl"
    shutil.copytree(
        VINYL,
        work,
        ignore=shutil.ignore_patterns("node_modules", "__pycache__", ".vinyl-data", "vinyl_api"),
    )
    (work / "docs" / "api.md").unlink()
    # The README names port 8750; the test must not need it free: its copy serves the storefront
    # at any free port, and the curl commands use the one `reckon svc run` prints.
    for toml in work.glob("deploy*.toml"):
        text = toml.read_text()
        assert "\nport = 8750" in text
        toml.write_text(text.replace("\nport = 8750", "\nexpose = true"))
    (work / "recommendations" / "node_modules").symlink_to(node_modules)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("NODE_PATH", None)
    blocks = _readme_blocks()
    commands = [
        line
        for lang, body in blocks
        if lang == "sh"
        for line in body.replace("\\\n", " ").splitlines()
        if line.strip()
    ]
    expected = next(body for lang, body in blocks if lang == "" and "anonymous buy" in body)
    assert expected.splitlines() == EXPECTED

    def sh(cmd: str) -> str:
        out = subprocess.run(
            ["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
        return out.stdout

    server: subprocess.Popen[str] | None = None
    port = 0
    started: list[str] = []
    pages: list[dict[str, object]] = []
    try:
        for cmd in commands:
            if "npm install" in cmd:
                continue
            if cmd.startswith("reckon svc run"):
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {cmd}"],
                    cwd=work,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
                port, started = _announced_port(server, "storefront")
                continue
            out = sh(cmd.replace("127.0.0.1:8750", f"127.0.0.1:{port}"))
            if cmd.startswith("python shop.py"):
                assert out.splitlines()[-len(EXPECTED) :] == EXPECTED, out
            if cmd.startswith("reckon svc check"):
                assert out.splitlines()[-1] == "wave 3: storefront (process)"
            if cmd.startswith("curl"):
                pages.append(json.loads(out))
        assert (work / "docs" / "api.md").read_text() == (VINYL / "docs" / "api.md").read_text()
        assert [p.get("copiesInStock", p.get("customer")) for p in pages] == [2, "alice"]
        # "Kill the Node.js process with kill -9: the runtime restarts it on the same port."
        assert server is not None
        node = subprocess.run(
            ["pgrep", "-s", str(server.pid), "-f", "recommendations/server.js"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(node) == 1
        os.kill(int(node[0]), signal.SIGKILL)
        for _ in range(300):
            again = subprocess.run(
                ["pgrep", "-s", str(server.pid), "-f", "recommendations/server.js"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if again and again != node:
                break
            time.sleep(0.1)
        assert again and again != node
        for _ in range(300):  # the RecordPage curl, once the new process is up
            page = json.loads(sh(commands[-2].replace("127.0.0.1:8750", f"127.0.0.1:{port}")))
            if "recommended" in page:
                break
            assert "code" in page, page  # a Connect error only while node restarts
            time.sleep(0.1)
        assert [r["title"] for r in page["recommended"]] == ["Blue Train", "A Love Supreme"]
        # "Ctrl-C (or SIGTERM) stops every process cleanly."
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=60)
        log = "".join(started) + rest
        assert server.returncode == 0, log
        assert "restarting" in log and "unit stopped" in log
        leftover = subprocess.run(["pgrep", "-s", str(server.pid)], capture_output=True)
        assert leftover.stdout == b""
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
