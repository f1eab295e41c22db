"""The code library in Debian's Chromium: every language, right-to-left Arabic, keyboard use,
contrast, print, and no request leaving the service. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from cds_service.knowledge import load_knowledge
from cds_service.knowledge.plain_words import LANGUAGES, default_plain_words
from cds_service.library import facts


@pytest.fixture
def served(serve_service, open_page):
    base = serve_service()
    return lambda **options: open_page(base, **options)


def _html_attributes(page) -> tuple[str, str]:
    return page.evaluate("() => [document.documentElement.lang, document.documentElement.dir]")


def test_index_and_a_code_page_in_every_language(served) -> None:
    words = default_plain_words()
    view = served()
    for language in LANGUAGES:
        labels = words.languages[language].labels
        direction = "rtl" if language == "ar" else "ltr"
        assert view.goto(f"/library?lang={language}").status == 200
        assert _html_attributes(view.page) == [language, direction]
        assert view.page.locator("h1").inner_text() == labels.library
        view.screenshot(f"library-index-{language}")

        assert view.goto(f"/library/77750?lang={language}").status == 200
        assert _html_attributes(view.page) == [language, direction]
        plain = view.page.locator("p.plain-text")
        assert plain.inner_text() == words.text("77750", language)[0]
        assert plain.is_visible()
        assert view.page.locator("#s-plain").inner_text() == labels.in_simple_words
        view.screenshot(f"library-77750-{language}")
    assert view.outside_requests == []


@pytest.mark.slow
def test_every_recommendable_code_in_every_language(served) -> None:
    words = default_plain_words()
    view = served()
    for code in facts.recommendable_codes(load_knowledge()):
        for language in LANGUAGES:
            response = view.page.goto(f"{view.base_url}/library/{code}?lang={language}", wait_until="domcontentloaded")
            assert response.status == 200, (code, language)
            assert _html_attributes(view.page) == [language, "rtl" if language == "ar" else "ltr"]
            assert view.page.locator("p.plain-text").inner_text() == words.text(code, language)[0], (code, language)
    assert view.outside_requests == []


def test_arabic_is_laid_out_right_to_left_with_english_details_left_to_right(served) -> None:
    view = served()
    view.goto("/library/79101?lang=ar")
    heading = view.page.locator("#s-plain")
    assert heading.evaluate("e => getComputedStyle(e).direction") == "rtl"
    details = view.page.locator("#s-guidelines + div")
    assert details.evaluate("e => getComputedStyle(e).direction") == "ltr"
    # Nothing pushes the page wider than the window (a sideways-hidden skip link would, in RTL).
    assert view.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # Right-to-left: the heading's text ends at the right edge of the main column.
    main_box = view.page.locator("main").bounding_box()
    heading_box = heading.bounding_box()
    assert heading_box["x"] + heading_box["width"] > main_box["x"] + main_box["width"] * 0.6


def test_accept_language_of_the_browser_chooses_the_page_language(served) -> None:
    view = served(locale="de-DE")
    view.goto("/library/79403")
    assert _html_attributes(view.page) == ["de", "ltr"]
    view = served(locale="es-MX")
    view.goto("/library")
    assert _html_attributes(view.page) == ["es", "ltr"]


def test_keyboard_skip_link_and_language_switcher(served) -> None:
    view = served()
    page = view.page
    view.goto("/library/77750?lang=en")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.className, document.activeElement.textContent]")
    assert focused == ["skip-link", "Skip to content"]
    skip = page.locator(".skip-link")
    box = skip.bounding_box()
    assert box["x"] >= 0 and box["y"] >= 0  # shown on focus, not parked off-screen
    assert skip.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # From the top of a fresh page: skip link, the section links, then the ten languages, in order.
    view.goto("/library/77750?lang=en")
    reached = []
    for _ in range(14):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.getAttribute('hreflang')"))
    assert [tag for tag in reached if tag][:10] == list(LANGUAGES)
    # Choose Français with the keyboard alone.
    page.locator('a[hreflang="fr"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/library/77750?lang=fr")
    assert _html_attributes(page) == ["fr", "ltr"]
    assert page.locator('a[hreflang="fr"]').get_attribute("aria-current") == "true"
    assert view.outside_requests == []


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
    red, green, blue = (channel(v) for v in rgb[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_text_contrast_meets_wcag_aa(served) -> None:
    view = served()
    view.goto("/library/77750")
    pairs = view.page.evaluate("""() => {
      const rgb = s => s.match(/[\\d.]+/g).map(Number);
      const background = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
        if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return rgb(c); } return [255, 255, 255]; };
      return [...document.querySelectorAll('main p, main li, main td, main th, main a, main h1, main h2, .source, .badge, .notice, .site-footer p')]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.tagName + '.' + e.className, rgb(getComputedStyle(e).color), background(e)]);
    }""")
    assert len(pairs) > 50
    for name, fore, back in pairs:
        lighter, darker = sorted((_luminance(fore), _luminance(back)), reverse=True)
        ratio = (lighter + 0.05) / (darker + 0.05)
        assert ratio >= 4.5, (name, fore, back, round(ratio, 2))


def test_landmarks_and_heading_order(served) -> None:
    view = served()
    view.goto("/library/77750?lang=ko")
    page = view.page
    assert page.locator("header").count() == 1 and page.locator("main").count() == 1
    assert page.locator("footer").count() == 1
    assert page.locator('nav[aria-label="언어"]').count() == 1
    levels = page.evaluate("() => [...document.querySelectorAll('h1, h2, h3')].map(h => Number(h.tagName[1]))")
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(after - before <= 1 for before, after in zip(levels, levels[1:]))


def test_print_hides_navigation_and_keeps_the_content(served) -> None:
    view = served()
    view.goto("/library/77750?lang=es")
    view.page.emulate_media(media="print")
    assert view.page.locator(".language-switcher").is_hidden()
    assert view.page.locator(".site-header nav").first.is_hidden()
    assert view.page.locator("p.plain-text").is_visible()
    view.page.pdf(path=str(view.screenshot("library-77750-es-print").with_suffix(".pdf")))


def test_unknown_code_page_in_the_browser(served) -> None:
    view = served()
    response = view.goto("/library/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E?lang=ar")
    assert response.status == 404
    assert _html_attributes(view.page) == ["ar", "rtl"]
    assert view.page.locator("img").count() == 0
    assert view.page.locator("h1").inner_text() == default_plain_words().languages["ar"].labels.not_found
    view.screenshot("library-404-ar")
    assert view.outside_requests == []
