"""The signing of store entries: where the key comes from, and that a tag binds key and value."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reckon.core import LocalStore
from reckon.core.stores import signing
from reckon.core.stores.signing import TAG_SIZE, Signer, default_signer
from reckon.errors import ConfigurationError

ALGORITHMS = ["auto", "blake2b", "hmac-sha256"]
if signing._blake3() is not None:
    ALGORITHMS.append("blake3")


@pytest.fixture
def fresh_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A process key resolved afresh from a key file under ``tmp_path``."""
    path = tmp_path / "config" / "reckon" / "cache-key"
    monkeypatch.delenv("RECKON_CACHE_KEY", raising=False)
    monkeypatch.setenv("RECKON_CACHE_KEY_FILE", str(path))
    signing.reset_default_signer()
    yield path
    signing.reset_default_signer()


def test_key_file_is_created_private_on_first_use_and_kept(fresh_key: Path) -> None:
    assert not fresh_key.exists()
    first = default_signer()
    assert stat.S_IMODE(fresh_key.stat().st_mode) == 0o600
    signing.reset_default_signer()
    again = default_signer()
    assert again.key_id == first.key_id
    tag = first.sign("k", b"v")
    assert again.verify("k", b"v", tag)


def test_key_file_inside_the_cache_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RECKON_CACHE_KEY", raising=False)
    monkeypatch.setenv("RECKON_CACHE_KEY_FILE", str(tmp_path / "cache" / "key"))
    signing.reset_default_signer()
    try:
        with pytest.raises(ConfigurationError, match="inside the cache directory"):
            LocalStore(tmp_path / "cache")
    finally:
        signing.reset_default_signer()


def test_a_team_shares_a_key_by_sharing_the_string(tmp_path: Path) -> None:
    """Two processes with the same RECKON_CACHE_KEY trust each other's entries; another string
    does not."""
    script = (
        "from reckon.core.stores.signing import default_signer;"
        "print(default_signer().sign('k', b'value').hex())"
    )

    def tag_in_child(secret: str) -> bytes:
        env = dict(os.environ, RECKON_CACHE_KEY=secret)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return bytes.fromhex(out.stdout.strip())

    ours = Signer("correct horse battery staple")
    assert ours.verify("k", b"value", tag_in_child("correct horse battery staple"))
    assert not ours.verify("k", b"value", tag_in_child("another team's key"))


def test_the_key_file_and_the_variable_agree(
    fresh_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying the key file's contents into RECKON_CACHE_KEY elsewhere gives the same key."""
    from_file = default_signer()
    monkeypatch.setenv("RECKON_CACHE_KEY", fresh_key.read_text())
    signing.reset_default_signer()
    assert default_signer().key_id == from_file.key_id


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RECKON_CACHE_KEY"):
        Signer("")


@pytest.mark.parametrize("writer", ALGORITHMS)
@pytest.mark.parametrize("reader", ALGORITHMS)
def test_readers_check_either_algorithm(writer: str, reader: str) -> None:
    tag = Signer("s", algorithm=writer).sign("key", [b"pie", memoryview(b"ces")])
    assert len(tag) == TAG_SIZE
    assert Signer("s", algorithm=reader).verify("key", b"pieces", tag)


def _assert_tampering_fails(signer: Signer, key: str, data: bytes, tag: bytes, flip: int) -> None:
    """Another key, one flipped bit of the value, or one of the MAC: none verifies."""
    assert not signer.verify(key + "x", data, tag)
    if data:
        changed = bytearray(data)
        changed[flip % len(data)] ^= 1 << (flip % 8)
        assert not signer.verify(key, bytes(changed), tag)
    bad = bytearray(tag)
    bad[1 + flip % (TAG_SIZE - 1)] ^= 1
    assert not signer.verify(key, data, bytes(bad))


@given(
    key=st.text(min_size=1, max_size=80),
    data=st.binary(max_size=2000),
    flip=st.integers(min_value=0, max_value=10_000),
    algorithm=st.sampled_from(ALGORITHMS),
)
def test_any_change_to_key_value_or_tag_fails(
    key: str, data: bytes, flip: int, algorithm: str
) -> None:
    signer = Signer("property", algorithm=algorithm)
    tag = signer.sign(key, data)
    assert signer.verify(key, data, tag)
    assert not Signer("other", algorithm=algorithm).verify(key, data, tag)
    _assert_tampering_fails(signer, key, data, tag, flip)
    assert not signer.verify(key, data, tag[:-1])
    assert not signer.verify(key, data, None)


def _master(secret: bytes) -> bytes:
    return hashlib.sha256(b"reckon cache key v1\0" + secret).digest()


def _blake2b_mac(secret: bytes, key: str, data: bytes) -> bytes:
    """The BLAKE2B tag, computed from the module's description: the MAC of the domain, the
    key's length, zero bytes that put the key's end one byte past a 128-byte block, the key,
    then the value."""
    b2key = hashlib.sha256(b"blake2b v2\0" + _master(secret)).digest()
    kb = key.encode("utf-8")
    head = b"reckon-store-v2\0" + len(kb).to_bytes(4, "little")
    head += bytes((1 - len(head) - len(kb)) % 128) + kb
    assert len(head) % 128 == 1
    mac = hashlib.blake2b(head + data, key=b2key, digest_size=32).digest()
    return bytes((signing.BLAKE2B,)) + mac


def _blake2b_v1_mac(secret: bytes, key: str, data: bytes) -> bytes:
    """The BLAKE2B_V1 tag of earlier versions (still read): the MAC of the domain, the key's
    length, the key, zero padding to one byte past a 128-byte block, then the value."""
    b2key = hashlib.sha256(b"blake2b\0" + _master(secret)).digest()
    kb = key.encode("utf-8")
    head = b"reckon-store-v1\0" + len(kb).to_bytes(4, "little") + kb
    head += bytes((1 - len(head)) % 128)
    assert len(head) % 128 == 1
    mac = hashlib.blake2b(head + data, key=b2key, digest_size=32).digest()
    return bytes((signing.BLAKE2B_V1,)) + mac


@given(key=st.text(min_size=0, max_size=300), data=st.binary(max_size=600))
def test_a_blake2b_tag_is_the_documented_mac(key: str, data: bytes) -> None:
    """Keys of any length, past a block too; the tag also verifies when the value comes as
    memoryview or pieces, by the signer that wrote it and by one that never saw the key."""
    tag = _blake2b_mac(b"secret", key, data)
    signer = Signer("secret", algorithm="blake2b")
    assert signer.sign(key, data) == tag
    assert Signer("secret").sign(key, data) == tag  # (the default, for a small value)
    assert signer.verify(key, memoryview(data), tag)
    assert signer.verify(key, [data[:3], data[3:]], tag)
    fresh = Signer("secret")
    assert fresh.verify(key, data, tag)
    assert fresh.verify(key, bytearray(data), tag)
    check = fresh.verifier(key, tag, len(data))
    check.update(data[:5])
    check.update(data[5:])
    assert check.ok()


@given(
    key=st.text(min_size=0, max_size=300),
    data=st.binary(max_size=600),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_tags_of_earlier_versions_still_verify(key: str, data: bytes, flip: int) -> None:
    """Entries stored by an earlier version (BLAKE2B_V1) stay hits: read whole, in pieces and
    block by block; any change to their key, value or tag still fails."""
    tag = _blake2b_v1_mac(b"secret", key, data)
    for reader in (Signer("secret"), Signer("secret", algorithm="hmac-sha256")):
        assert reader.verify(key, data, tag)
        assert reader.verify(key, memoryview(data), tag)
        assert reader.verify(key, [data[:3], data[3:]], tag)
        check = reader.verifier(key, tag, len(data))
        check.update(data)
        assert check.ok()
        _assert_tampering_fails(reader, key, data, tag, flip)
    assert not Signer("other").verify(key, data, tag)
    assert Signer("secret").sign(key, data)[0] != signing.BLAKE2B_V1  # never written


ALL_IDS = [signing.HMAC_SHA256, signing.BLAKE3, signing.BLAKE2B_V1, signing.BLAKE2B]


@given(
    key=st.text(min_size=0, max_size=100),
    data=st.binary(max_size=300),
    made=st.sampled_from(ALL_IDS),
    claimed=st.sampled_from(ALL_IDS),
)
def test_a_tag_of_one_algorithm_is_never_valid_as_another(
    key: str, data: bytes, made: int, claimed: int
) -> None:
    """The MAC of any algorithm, relabelled with another algorithm's byte, fails (each has its
    own key and domain), whole, in pieces and block by block."""
    if made == signing.BLAKE3 and signing._blake3() is None:
        return
    if made == signing.BLAKE2B_V1:
        tag = _blake2b_v1_mac(b"secret", key, data)
    else:
        name = {signing.HMAC_SHA256: "hmac-sha256", signing.BLAKE3: "blake3"}
        tag = Signer("secret", algorithm=name.get(made, "blake2b")).sign(key, data)
    assert tag[0] == made
    relabelled = bytes((claimed,)) + tag[1:]
    reader = Signer("secret")
    assert reader.verify(key, data, relabelled) == (made == claimed)
    assert reader.verify(key, [data], relabelled) == (made == claimed)
    check = reader.verifier(key, relabelled, len(data))
    check.update(data)
    assert check.ok() == (made == claimed)


def test_tags_stay_right_past_what_the_signer_keeps() -> None:
    """The signer keeps a prepared hasher per key it signed under, and drops them all when it
    holds many: tags made before, across and after the drops all verify, by the signer and by a
    reader that never wrote, under their own key and value only."""
    signer = Signer("many keys")
    cold = Signer("many keys")
    values = {f"{i:064x}": b"%d" % i + bytes(i % 4000) for i in range(1500)}
    tags = {key: signer.sign(key, value) for key, value in values.items()}
    for reader in (signer, cold):
        for i, (key, tag) in enumerate(tags.items()):
            value = values[key]
            assert reader.verify(key, value, tag)
            assert reader.verify(key, memoryview(value), tag)
            assert not reader.verify(key, value + b"x", tag)
            assert not reader.verify(key, b"x" + value[1:], tag)
            assert not reader.verify(f"{i + 1:064x}", value, tag)
            assert not reader.verify(key, value, tag[:-1])
            assert not reader.verify(key, value, tag[:-1] + bytes((tag[-1] ^ 1,)))
            assert not Signer("another key").verify(key, value, tag)
    assert not signer.verify("k", b"v", b"")
    assert not signer.verify("k", b"v", bytes((signing.BLAKE2B,)))


def test_the_default_signs_small_values_with_blake2b_and_large_ones_with_blake3() -> None:
    signer = Signer("s")
    assert signer.sign("k", b"small")[0] == signing.BLAKE2B
    large = os.urandom(64 << 10)
    tag = signer.sign("k", [large[:10], large[10:]])
    expected = signing.BLAKE3 if signing._blake3() is not None else signing.BLAKE2B
    assert tag[0] == expected
    assert Signer("s", algorithm="hmac-sha256").verify("k", large, tag)


def test_a_seal_is_never_a_tag_nor_a_tag_a_seal() -> None:
    signer = Signer("s")
    record = b"a record"
    seal = signer.seal(record)
    assert signer.check_seal(record, seal)
    assert not signer.check_seal(record + b"x", seal)
    assert not Signer("t").check_seal(record, seal)
    assert not signer.check_seal(record, None)
    tag = signer.sign("", record)
    assert not signer.check_seal(record, tag[1:])
    for alg in ALL_IDS:
        assert not signer.verify("", record, bytes((alg,)) + seal)
