"""HTML mail bodies: readable text, and HTML safe to show."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from madoguchi.ingest.htmltext import html_to_text, sanitize_html


def test_paragraphs_divs_and_br_become_line_breaks():
    html = "<p>一行目</p><div>二行目<br>三行目</div><div><br></div><div>五行目</div>"
    assert html_to_text(html) == "一行目\n二行目\n三行目\n\n五行目"


def test_outlook_nbsp_paragraph_is_a_blank_line():
    html = (
        '<p class="MsoNormal">お世話になっております。<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">よろしくお願いいたします。<o:p></o:p></p>'
    )
    assert html_to_text(html) == "お世話になっております。\n\nよろしくお願いいたします。"


def test_script_style_head_and_title_content_is_dropped():
    html = (
        "<html><head><title>件名</title><style>p {color: red}</style></head>"
        "<body><script>alert('x')</script><p>本文</p></body></html>"
    )
    assert html_to_text(html) == "本文"


def test_unclosed_head_does_not_hide_the_body():
    assert html_to_text("<head><title>t</title><body>本文です") == "本文です"


def test_entities_are_decoded():
    assert html_to_text("<p>A &amp; B &lt;tag&gt; &#9312; &copy;</p>") == "A & B <tag> ① ©"


def test_lists_get_bullets_and_numbers():
    html = "<ul><li>項目A</li><li>項目B<ol><li>手順1</li><li>手順2</li></ol></li></ul>"
    assert html_to_text(html) == "- 項目A\n- 項目B\n  1. 手順1\n  2. 手順2"


def test_blockquote_lines_are_quoted():
    html = "<div>返信です</div><blockquote>元のメール<br>二行目</blockquote>"
    assert html_to_text(html) == "返信です\n> 元のメール\n> 二行目"


def test_link_target_follows_its_text_unless_the_same():
    html = '<a href="https://example.com/faq">FAQ</a> / <a href="https://x.jp">https://x.jp</a>'
    assert html_to_text(html) == "FAQ (https://example.com/faq) / https://x.jp"


def test_source_line_break_between_japanese_characters_is_not_a_space():
    text = html_to_text("<p>ログインでき\nません。 Login\nfails</p>")
    assert text == "ログインできません。 Login fails"


def test_whitespace_collapses_but_pre_is_kept():
    assert html_to_text("<p>a   b\n\tc</p><pre>  x\n   y</pre>") == "a b c\n  x\n   y"


def test_table_rows_become_lines_with_cells_side_by_side():
    html = (
        "<table><tr><td>会社名</td><td>株式会社サンプル</td></tr>"
        "<tr><td>電話</td><td>03</td></tr></table>"
    )
    assert html_to_text(html) == "会社名 株式会社サンプル\n電話 03"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"'&;#!- abpdivlscrt\n①あ")), max_size=300))
def test_malformed_markup_never_raises(html):
    assert isinstance(html_to_text(html), str)
    assert isinstance(sanitize_html(html), str)


# -- sanitize_html -------------------------------------------------------------


def test_scripts_and_event_handlers_are_removed():
    html = '<p onclick="steal()">本文</p><script>steal()</script><img src="cid:a" onerror="x()">'
    assert sanitize_html(html) == '<p>本文</p><img src="cid:a">'


def test_javascript_urls_are_removed_and_links_get_noopener():
    html = '<a href="javascript:alert(1)">x</a><a href="https://example.com">y</a>'
    assert sanitize_html(html) == (
        '<a rel="noopener noreferrer">x</a>'
        '<a href="https://example.com" rel="noopener noreferrer">y</a>'
    )


def test_remote_images_lose_their_source_but_inline_ones_keep_it():
    html = (
        '<img src="http://tracker.example/p.gif"><img src="HTTPS://t.example/p.gif">'
        '<img src="//t.example/p.gif"><img src="data:image/png;base64,AAAA">'
        '<img src="cid:logo@01DA" alt="ロゴ">'
    )
    assert sanitize_html(html) == '<img><img><img><img><img src="cid:logo@01DA" alt="ロゴ">'


def test_styles_are_removed():
    html = '<style>body{}</style><p style="position:fixed">本文</p><link rel="stylesheet" href="x">'
    assert sanitize_html(html) == "<p>本文</p>"
