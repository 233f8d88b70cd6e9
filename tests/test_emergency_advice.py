"""Emergency advice fits the emergency: one editable table (nlp/tables/emergency_advice.tsv), one advice per kind."""
from __future__ import annotations

import pytest

import nlp
from nlp.rules import TABLES, read_patterns
from nlp.taxonomy import load_emergencies

# code -> (two messages of that kind, words its advice must hold, words that belong to another kind's advice)
KINDS = {
    "fire": (("厨房着火了，火很大", "楼道里冒黑烟了"), ("119", "不要坐电梯"), ("120", "110", "总阀")),
    "gas": (("家里煤气味好重", "楼道里一股天然气泄漏的味道"), ("不要开灯", "不要打火", "室外", "119"), ("110",)),
    "medical": (("我爸突然晕倒了", "老太太在楼梯上摔倒了起不来"), ("120",), ("119", "110")),
    "violence": (("楼下有人拿刀砍人", "有人在砸门威胁我"), ("110", "保护好自己"), ("119", "120")),
    "self_harm": (("邻居说不想活了，站在阳台上", "有人要跳楼"), ("110", "12356", "陪在"), ("119",)),
    "missing": (("我家老人走丢了", "孩子到现在还没回家"), ("110", "监控"), ("119", "120")),
    "flood": (("卫生间水管爆了，水哗哗往外冒", "家里淹水了，水漫到客厅"), ("总阀", "电闸", "物业"), ("110", "120")),
    "electric": (("有人触电了", "电箱冒火花了"), ("电闸", "120", "119"), ("110",)),
    "trapped": (("我被困在电梯里了", "电梯卡住了，里面有个老人"), ("119", "96333", "不要扒门"), ("110", "120")),
    "collapse": (("墙塌了，压到人了", "这栋楼快要塌了"), ("119", "离开"), ("110",)),
}


def test_every_kind_the_rules_recognise_has_advice_and_is_tested():
    assert set(read_patterns(TABLES / "emergency.tsv")) == set(nlp.EMERGENCIES) == set(KINDS)
    assert all(e.advice and e.call and e.name for e in nlp.EMERGENCIES.values())


@pytest.mark.parametrize("code", sorted(KINDS))
def test_a_message_of_each_kind_gets_that_kinds_advice(code):
    messages, must, never = KINDS[code]
    advice = nlp.EMERGENCIES[code].advice
    for text in messages:
        v = nlp.classify(text)
        assert v.emergency == code, text
        assert v.filing == "file"  # an emergency is never asked about or answered away
        assert nlp.EMERGENCIES[v.emergency].advice == advice
    assert all(word in advice for word in must), advice
    assert not any(word in advice for word in never), advice


def test_advice_is_not_shared_between_kinds():
    advice = [e.advice for e in nlp.EMERGENCIES.values()]
    assert len(set(advice)) == len(advice)
    for marker, code in (("96333", "trapped"), ("总阀", "flood"), ("12356", "self_harm"), ("监控", "missing")):
        assert [c for c, e in nlp.EMERGENCIES.items() if marker in e.advice] == [code]


def test_a_burst_pipe_is_not_a_119_call_but_a_trapped_lift_is():
    flood, trapped, electric = (nlp.EMERGENCIES[c] for c in ("flood", "trapped", "electric"))
    assert flood.call != "119" and "119" not in flood.advice.split("。")[0]  # close the valve first
    assert trapped.call == "119"
    assert electric.advice.index("电闸") < electric.advice.index("120")  # cut the power before anything else


def test_the_advice_table_is_checked_when_loaded(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("# comment\nfire\t火情\t119\t马上拨打 119。\n", encoding="utf-8")
    assert load_emergencies(good)["fire"].advice == "马上拨打 119。"
    for bad in ("fire\t火情\t119\n", "fire\t火情\t\t快跑\n", "fire\t火情\t119\t快跑\nfire\t火\t119\t跑\n"):
        path = tmp_path / "bad.tsv"
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(ValueError, match=r"bad\.tsv:\d"):
            load_emergencies(path)
