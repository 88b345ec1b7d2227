"""FileTokenSource: follows the kubelet's rotations, reads only when the file changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from service.client import MAX_TOKEN_BYTES, FileTokenSource, TokenFileError

from .kubelet import rotate_token, write_token_volume

TOKEN_A = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
TOKEN_B = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2lnbmF0dXJlLWI"


def test_reads_the_token_once_while_the_file_is_unchanged(tmp_path: Path) -> None:
    source = FileTokenSource(write_token_volume(tmp_path / "vol", TOKEN_A))
    assert [source.token() for _ in range(5)] == [TOKEN_A] * 5
    assert source.reads == 1


def test_follows_the_kubelet_symlink_swap(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    source = FileTokenSource(write_token_volume(volume, TOKEN_A))
    assert source.token() == TOKEN_A
    rotate_token(volume, TOKEN_B)
    assert source.token() == TOKEN_B
    assert source.token() == TOKEN_B
    assert source.reads == 2


def test_a_swap_to_a_token_of_the_same_size_is_seen(tmp_path: Path) -> None:
    # Same size, and possibly the same mtime tick: only the inode tells them apart.
    same_size = TOKEN_A[:-1] + ("X" if TOKEN_A[-1] != "X" else "Y")
    volume = tmp_path / "vol"
    source = FileTokenSource(write_token_volume(volume, TOKEN_A))
    assert source.token() == TOKEN_A
    rotate_token(volume, same_size)
    assert source.token() == same_size


def test_a_plain_file_replaced_with_rename_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    source = FileTokenSource(path)
    assert source.token() == TOKEN_A
    (tmp_path / "new").write_text(TOKEN_B)
    os.replace(tmp_path / "new", path)
    assert source.token() == TOKEN_B


def test_an_in_place_rewrite_with_a_new_mtime_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    source = FileTokenSource(path)
    assert source.token() == TOKEN_A
    path.write_text(TOKEN_B)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert source.token() == TOKEN_B


def test_an_in_place_rewrite_with_the_mtime_set_back_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    before = path.stat()
    source = FileTokenSource(path)
    assert source.token() == TOKEN_A
    time.sleep(0.05)  # past the file system clock's tick, so that ctime moves
    same_size = TOKEN_A[:-1] + ("X" if TOKEN_A[-1] != "X" else "Y")
    path.write_text(same_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.token() == same_size


def test_missing_file_is_an_error_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "token"
    source = FileTokenSource(path)
    with pytest.raises(TokenFileError, match="cannot stat"):
        source.token()
    path.write_text(TOKEN_A)
    assert source.token() == TOKEN_A


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b" \n", "is empty"),
        (b"two tokens-in-one", "single bearer token"),
        (b"abc\r\nX-Injected: 1", "single bearer token"),
        (b"a" * (MAX_TOKEN_BYTES + 1), "exceeds"),
        ("tok\u00e9n".encode(), "not ASCII text"),
    ],
)
def test_content_that_is_not_one_token_is_refused_without_echoing_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(TokenFileError, match=message) as caught:
        FileTokenSource(path).token()
    if content.strip():
        assert content.decode("utf-8")[:20] not in str(caught.value)


def test_the_surrounding_newline_is_not_part_of_the_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN_A}\n")
    assert FileTokenSource(path).token() == TOKEN_A
