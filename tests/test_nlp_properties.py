"""Property-based tests: classify never crashes and always answers inside the interface; the fast rule
matcher finds exactly what the plain regular expression finds."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlp
from nlp import CATEGORIES
from nlp.rules import INTENTS, Fast, split_top

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=CJK, max_size=40),
    st.text(alphabet=st.one_of(CJK, st.sampled_from(list("，。！？ 123abc<>\t\n火气倒血吗了"))), max_size=60),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_classify_is_total_and_valid(text):
    v = nlp.classify(text)
    assert v.category in CATEGORIES
    assert 0.0 <= v.confidence <= 1.0
    assert v.intent in INTENTS
    assert v.emergency is None or v.emergency in nlp.EMERGENCIES
    assert 2 <= len(v.candidates) <= 3 and all(c in CATEGORIES for c, _ in v.candidates)
    assert [s for _, s in v.candidates] == sorted((s for _, s in v.candidates), reverse=True)
    assert all(isinstance(k, str) and k for k in v.keywords) and len(v.keywords) <= 5
    if v.unsure:
        assert len(v.candidates) >= 2


def test_classify_accepts_non_strings():
    assert nlp.classify(None).unsure
    assert nlp.classify(12345).category in CATEGORIES


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_fast_rules_equal_plain_regex(text):
    r = nlp.warm_up().rules
    t = nlp.features.normalize(text)
    for fast in (r.status, r.wish, r.emergencies):
        a, b = fast.search(t), fast.re.search(t)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.start() == b.start()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["着火", "(煤气|燃气)味", "[?]$", "a.{0,3}b", "x?y", "吗$", "(?:你|您)好"]),
                min_size=1, max_size=5),
       st.text(alphabet=st.sampled_from(list("着火煤气燃味?吗你您好abxy ")), max_size=30))
def test_fast_on_generated_patterns(pats, text):
    f = Fast(pats)
    plain = re.compile("|".join(f"(?:{p})" for p in pats))
    a, b = f.search(text), plain.search(text)
    assert (a is None) == (b is None)
    if a is not None:
        assert a.start() == b.start()


def test_split_top_respects_groups_and_classes():
    assert split_top("a|(b|c)|[|]|d\\|e") == ["a", "(b|c)", "[|]", "d\\|e"]


WORDS = st.sampled_from(["飞线充电", "垃圾分类", "电动车", "业委会", "物业费", "楼道", "漏水", "停车位", "高空抛物",
                         "中华人民共和国", "噪音", "的", "了", "很", "网格员"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(alphabet=CJK, min_size=1, max_size=3)), max_size=12))
def test_dictionary_words_are_jiebas_word_graph(parts):
    """features.dict_words reads jieba's prefix dictionary directly; it must list each character and exactly
    the words of 2+ characters of jieba's own word graph (Tokenizer.get_DAG), in the same order."""
    from nlp.features import dict_words

    tok = nlp.warm_up().tok
    run = "".join(parts)
    dag = tok.get_DAG(run) if run else {}
    expected = [w for k, ends in dag.items() for w in [run[k]] + [run[k : j + 1] for j in ends if j > k]]
    assert dict_words(run, tok.FREQ.get) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(alphabet=CJK, min_size=1, max_size=3)), max_size=12),
       st.sets(st.one_of(WORDS, st.text(alphabet=CJK, min_size=2, max_size=4)), max_size=8))
def test_words_read_off_a_vocabulary_are_the_full_words_it_knows(parts, vocabulary):
    """A model reads full-mode words off its own vocabulary: the result must be jieba's full-mode words with
    those of 2+ characters outside the vocabulary left out, in the same order (characters always stay)."""
    from nlp.features import vocabulary as prefix_dictionary, words_in

    freq, extra = nlp.warm_up().tok.FREQ, prefix_dictionary(vocabulary)

    class WithVocabulary:  # jieba's dictionary plus the vocabulary (a model's words are jieba words)
        def get(self, key):
            a, b = freq.get(key), extra.get(key)
            return None if a is None and b is None else max(a or 0, b or 0)

    tok = type("Tokenizer", (), {"FREQ": WithVocabulary()})()
    text = "".join(parts) + "，abc " + "".join(reversed(parts))
    cfg = {"cut_all": True}
    full = words_in(text, tok, cfg)
    assert words_in(text, tok, cfg, extra) == [
        w for w in full if len(w) == 1 or w in vocabulary or not '\u4e00' <= w[0] <= '\u9fd5']
