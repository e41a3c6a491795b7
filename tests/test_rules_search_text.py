"""The one folding of search: width, case, dashes; the map back to the original text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from madoguchi.ticketing.rules.reading import reading
from madoguchi.ticketing.rules.search_text import (
    bigrams,
    digits,
    find,
    fold,
    fold_map,
    indexed_by_bigrams,
    lookup_fold,
    lookup_key,
    message_document,
)


def test_half_width_kana_with_voiced_marks_folds_to_full_width() -> None:
    assert fold("ﾛｸﾞｲﾝ") == fold("ログイン") == "ログイン"
    assert fold("ﾊﾟｽﾜｰﾄﾞ") == "パスワード"


def test_full_width_latin_and_case_fold_alike() -> None:
    assert fold("ＣＳＶ") == fold("CSV") == fold("csv") == "csv"
    assert fold("Ｅｘｃｅｌ２０２１") == "excel2021"


def test_numbers_in_any_width_and_with_any_dash_fold_alike() -> None:
    wanted = "2031-0003"
    for written in ("２０３１－０００３", "2031‐0003", "2031–0003", "2031—0003", "2031−0003",
                    "2031ー0003", "２０３１ー０００３", "2031ｰ0003", "2031―0003"):
        assert fold(written) == wanted, written


def test_the_long_sound_mark_stays_in_katakana_words() -> None:
    assert fold("データー") == "データー"
    assert fold("サーバー1台") == "サーバー1台"  # ー before a digit, not between two
    assert fold("ー1") == "ー1" and fold("1ー") == "1ー"


def test_compatibility_characters_fold() -> None:
    assert fold("①") == "1"
    assert fold("㈱山田") == "(株)山田"
    assert fold("　") == " "  # the ideographic space


def test_the_map_points_back_at_the_original_text() -> None:
    original = "画面に ﾛｸﾞｲﾝ できない"
    at = find(original, fold("ログイン"))
    assert at is not None and original[at[0]:at[1]] == "ﾛｸﾞｲﾝ"
    wide = "番号は２０３１－０００３です"
    at = find(wide, fold("2031-0003"))
    assert at is not None and wide[at[0]:at[1]] == "２０３１－０００３"
    # Inside what one character became: the whole character is marked.
    at = find("㈱山田", "株")
    assert at == (0, 1)
    assert find("ログイン", "csv") is None


@given(st.text(max_size=40))
def test_folding_is_stable_and_mapped_for_any_text(text: str) -> None:
    folded, starts = fold_map(text)
    assert folded == fold(text)
    assert fold(folded) == folded  # folding twice changes nothing more
    if starts is not None:
        assert len(starts) == len(folded) + 1 and starts[-1] == len(text)
        assert starts == sorted(starts)


# What Japanese mail is written in: kana of both widths with their marks, kanji,
# ASCII and full-width letters and digits, dashes, compatibility signs.
_JAPANESE = st.text(st.sampled_from(
    "あいうカキクｱｲｳｶﾞﾊﾟﾞﾟ゛゜ー－‐―−ｰ漢字請求ABCabcＡＢＣａｂｃ0123０１２３ 　①㈱㌔"), max_size=40)


@given(_JAPANESE)
def test_japanese_text_is_always_mapped_back(text: str) -> None:
    folded, starts = fold_map(text)
    assert starts is not None and folded == fold(text)


def test_bigrams_are_pairs_without_white_space() -> None:
    assert bigrams("請求書 ab") == ["請求", "求書", "ab"]
    assert indexed_by_bigrams("請求") and indexed_by_bigrams("os")
    assert not indexed_by_bigrams("請求書") and not indexed_by_bigrams("請")


def test_a_note_is_found_by_its_own_text_and_mail_by_its_addresses() -> None:
    note = message_document(note=True, subject="件名の語", text="メモ本文", sender="a@b.jp")
    assert "件名" not in note and "a@b.jp" not in note
    mail = message_document(note=False, subject="ＣＳＶ", text="本文", sender="Yamada@Example.JP",
                            recipients=["desk@example.jp"], cc=["boss@example.jp"])
    assert "csv" in mail and "yamada@example.jp" in mail and "boss@example.jp" in mail


def test_lookup_keys_fold_kana_and_keep_numbers_as_digits() -> None:
    assert lookup_fold("やまだ") == lookup_fold("ヤマダ") == lookup_fold("ﾔﾏﾀﾞ") == "ヤマダ"
    assert digits("０３－１２３４－５６７８") == "0312345678"
    key = lookup_key("山田 太郎", readings=[reading("山田 太郎")], numbers=["03-1234-5678"])
    assert "山田太郎" in key and "ヤマダ" in key and "0312345678" in key
    assert reading("abc") == "" and reading("") == ""
