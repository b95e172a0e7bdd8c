"""The log redactor: every secret value replaced, however the output is cut into chunks."""

from __future__ import annotations

import pytest

from trainyard.backends.redaction import Redactor

TOKEN = "hf_Zx81kQpa0"
STREAM = f"step 1\nloaded {TOKEN}!\n{TOKEN}{TOKEN} hf_Zx8 done\n".encode()
REDACTED = b"step 1\nloaded [secret HF_TOKEN]!\n[secret HF_TOKEN][secret HF_TOKEN] hf_Zx8 done\n"


def run(redactor: Redactor, chunks: list[bytes]) -> bytes:
    return b"".join(redactor.feed(c) for c in chunks) + redactor.flush()


def test_a_value_cut_at_any_two_points_is_still_replaced() -> None:
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            chunks = [STREAM[:i], STREAM[i:j], STREAM[j:]]
            assert run(Redactor({"HF_TOKEN": TOKEN}), chunks) == REDACTED, (i, j)


def test_a_byte_at_a_time_is_replaced_and_nothing_else_is_lost() -> None:
    assert run(Redactor({"HF_TOKEN": TOKEN}), [bytes([b]) for b in STREAM]) == REDACTED


def test_the_start_of_a_value_at_the_end_of_the_stream_is_kept_as_it_is() -> None:
    r = Redactor({"HF_TOKEN": TOKEN})
    held = r.feed(b"almost hf_Zx81")
    assert held == b"almost "  # could still become the value
    assert r.flush() == b"hf_Zx81"


def test_one_value_starting_another_gives_the_longer_its_own_name() -> None:
    r = Redactor({"SHORT": "abc", "LONG": "abcdef"})
    for cut in range(1, 12):
        data = b"abcdef abc abcdex"
        assert run(r, [data[:cut], data[cut:]]) == b"[secret LONG] [secret SHORT] [secret SHORT]dex", cut


@pytest.mark.parametrize("secrets", [{}, {"EMPTY": ""}])
def test_no_values_pass_output_through_untouched(secrets: dict[str, str]) -> None:
    r = Redactor(secrets)
    assert not r
    assert run(r, [b"a", b"b\n"]) == b"ab\n"


def test_utf8_values_are_replaced_in_the_bytes() -> None:
    r = Redactor({"PASS": "pässwörd"})
    data = "x pässwörd y".encode()
    assert run(r, [data[:4], data[4:]]) == b"x [secret PASS] y"
