"""Micro-wishes in the chat, through the webhook: residents, reviewers and Party members as WeChat sends them."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from handlers import wishes
from handlers.routing import open_question
from handlers.wish_rules import Limits
from storage.community import seed_demo
from storage.models import Community, Outbox, Staff, Ticket, Wish, WishPhoto
from tests.wish_support import CHEN, LI, LIU, PEOPLE, QIAN, SUN, ZHANG, ZHAO

NOW = datetime(2026, 11, 2, 2, 0)
LAMP = "想请人帮忙换一下厨房的灯泡"


def number_in(reply: str) -> str:
    return re.search(r"编号[：: ]*(\d{6,})", reply).group(1)


@pytest.fixture
async def people(service):
    """幸福里社区 (张阿姨 and 李大爷 bound, 陈主任 the committee's head, 刘党员), three more Party members (钱党员
    registered elsewhere), and 刘党员 registered through the chat by the tests that need him."""
    await seed_demo(service.engine, PEOPLE, NOW)
    async with service.ctx.sessions() as s:
        s.add(Community(code="elsewhere", name="别处社区"))
        s.add_all([Staff(openid=o, role="party_member", grid_id=None, is_head=False, name=n, active=True,
                         created_at=NOW) for o, n in ((ZHAO, "赵党员"), (SUN, "孙党员"), (QIAN, "钱党员"))])
        await s.commit()
    await service.ctx.directory.changed(service.ctx.state)
    return PEOPLE


@pytest.fixture
async def members(wechat, people):
    for openid, unit in ((LIU, "区税务局"), (ZHAO, "市第一医院"), (SUN, "区税务局")):
        assert "报到成功" in await wechat.send(openid, f"报到 单位：{unit} 社区：幸福里社区")
    assert "报到成功" in await wechat.send(QIAN, "报到 单位：某公司 社区：别处社区")


async def outbox(service, openid: str | None = None) -> list[Outbox]:
    async with service.ctx.sessions() as s:
        rows = (await s.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [r for r in rows if openid is None or r.openid == openid]


async def last_notice(service, openid: str) -> str:
    return (await outbox(service, openid))[-1].text


async def wish(service, number: str) -> Wish:
    async with service.ctx.sessions() as s:
        return (await s.execute(select(Wish).where(Wish.number == number))).scalar_one()


async def approved(wechat, text: str = LAMP, who: str = ZHANG, kind: str = "便民服务") -> str:
    number = number_in(await wechat.send(who, f"微心愿 {text}"))
    assert "已通过" in await wechat.send(CHEN, f"审核 {number} 通过 {kind}")
    return number


async def test_a_wish_from_the_resident_to_the_member_and_back(wechat, service, members):
    receipt = await wechat.send(ZHANG, f"微心愿 {LAMP}")
    number = number_in(receipt)
    assert f"编号：{number}" in receipt and "审核" in receipt
    assert number in await wechat.push(ZHANG, "image", PicUrl="http://img/lamp.jpg", MediaId="lamp")

    listing = await wechat.send(CHEN, "待审核")
    assert number in listing and "3栋2单元501" in listing  # the review checks the household
    shown = await wechat.send(CHEN, "1")
    assert f"编号：{number}" in shown and "审核" in shown and "501" in shown
    assert "已通过" in await wechat.send(CHEN, f"审核 {number} 通过 便民服务 想请人帮忙换厨房灯泡")
    told = (await outbox(service, ZHANG))[-1]
    assert "审核通过" in told.text and (told.about, told.ref, told.phrase) == (
        f"wish:{(await wish(service, number)).id}", number, "待认领")

    wall = await wechat.send(LIU, "心愿墙")
    assert number in wall and "便民服务" in wall and "3栋" in wall
    assert "501" not in wall and "张" not in wall and "想请人帮忙换厨房灯泡" in wall  # the edited public text
    card = await wechat.send(LIU, "1")
    assert f"认领 {number}" in card and "501" not in card
    claimed = await wechat.send(LIU, f"认领 {number}")
    assert f"编号：{number}" in claimed and "认领成功" in claimed
    assert "已被在职党员刘**认领" in await last_notice(service, ZHANG)

    assert "话已经带到" in await wechat.send(LIU, f"回复 {number} 阿姨好，周六上午来换，方便吗？")
    assert "阿姨好，周六上午来换，方便吗？" in await last_notice(service, ZHANG)  # the words as he wrote them
    wide = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))  # a phone's full-width digits
    assert "话已经带到" in await wechat.send(ZHANG, f"回复 {wide} 方便，我在家。")
    assert "方便，我在家。" in await last_notice(service, LIU)
    assert f"编号：{number}" in await wechat.send(ZHANG, "同意留电话 13800001234")
    assert "13800001234" in await last_notice(service, LIU)

    asked = await wechat.send(LIU, f"圆梦 {number} 换好了新的节能灯泡")
    assert "多长时间" in asked
    done = await wechat.send(LIU, "1.5小时")
    assert f"编号：{number}" in done and "1小时30分钟" in done
    assert number in await wechat.push(LIU, "image", PicUrl="http://img/proof.jpg", MediaId="proof")
    notice = (await outbox(service, ZHANG))[-1]
    assert "1 已完成" in notice.text and notice.phrase == "待确认"

    thanks = await wechat.send(ZHANG, "1")  # the notice's question
    assert f"编号：{number}" in thanks and "圆梦" in thanks
    assert "1小时30分钟" in await last_notice(service, LIU)
    service_list = await wechat.send(LIU, "我的服务")
    assert number in service_list and "1小时30分钟" in service_list

    async with service.ctx.sessions() as s:
        detail = await wishes.wish_detail(s, number)
        purposes = [p.purpose for p in (await s.execute(select(WishPhoto).order_by(WishPhoto.id))).scalars()]
    assert (detail["status"], detail["claimed_by"], detail["hours"]) == ("closed", ["刘党员"], 1.5)
    assert purposes == ["wish", "proof"]
    assert [e["action"] for e in detail["events"]] == [
        "submitted", "photo", "approved", "edited", "claimed", "message", "message", "phone_shared", "fulfilled",
        "photo", "confirmed"]
    notices = [n for n in await outbox(service) if n.about.startswith("wish:")]
    assert notices and all(n.ref == number and 0 < len(n.phrase) <= 5 for n in notices)


async def test_my_wishes_are_numbered_and_one_not_claimed_can_be_withdrawn(wechat, service, members):
    first = number_in(await wechat.send(ZHANG, "微心愿 想请人陪我去社区医院量血压"))
    second = await approved(wechat, "想请人帮忙取一下快递")
    listing = await wechat.send(ZHANG, "我的心愿")
    assert listing.index(second) < listing.index(first)  # newest first
    assert "量血压" in await wechat.send(ZHANG, "2") and first in await wechat.send(ZHANG, "2")
    assert "1 到 2" in await wechat.send(ZHANG, "9")  # not on the list: asked again
    assert "已撤回" in await wechat.send(ZHANG, f"撤回 {first}")
    await wechat.send(LIU, f"认领 {second}")
    assert "不能这样操作" in await wechat.send(ZHANG, f"撤回 {second}")  # claimed: no longer hers to take back
    assert ((await wish(service, first)).status, (await wish(service, second)).status) == ("withdrawn", "claimed")
    assert "没有找到" in await wechat.send(LI, f"撤回 {second}")  # not his


async def test_roles_are_real(wechat, service, members):
    number = number_in(await wechat.send(ZHANG, f"微心愿 {LAMP}"))
    assert "只有居委会" in await wechat.send(LI, "待审核")
    assert "只有居委会" in await wechat.send(LI, f"审核 {number} 通过 便民服务")
    assert "已通过" in await wechat.send(CHEN, f"审核 {number} 通过 便民服务")
    assert "在职党员" in await wechat.send(LI, f"认领 {number}")  # a resident cannot claim
    assert "在职党员" in await wechat.send(LI, "心愿墙")
    elsewhere = await wechat.send(QIAN, "心愿墙")
    assert number not in elsewhere and "别处社区" in elsewhere  # another community's wall is not his
    assert "没有找到" in await wechat.send(QIAN, f"认领 {number}")
    assert number not in await wechat.send(QIAN, "1")
    assert "在职党员" in await wechat.send(ZHANG, f"认领 {number}")
    await wechat.send(LIU, f"认领 {number}")
    await wechat.send(LIU, f"圆梦 {number} 换好了 用时1小时")
    assert "没有找到" in await wechat.send(LI, f"确认 {number}")  # only the wish's own resident confirms
    assert "不归您" in await wechat.send(LIU, f"确认 {number}")
    assert (await wish(service, number)).status == "fulfilled"
    assert "圆梦" in await wechat.send(ZHANG, f"确认 {number}")
    assert (await wish(service, number)).status == "closed"


async def test_two_members_claiming_at_once_exactly_one_wins(wechat, service, members):
    number = await approved(wechat)
    replies = await asyncio.gather(*(wechat.send(who, f"认领 {number}") for who in (LIU, ZHAO, SUN)))
    assert sum("认领成功" in r for r in replies) == 1
    assert sum("已经被其他党员认领" in r for r in replies) == 2
    async with service.ctx.sessions() as s:
        detail = await wishes.wish_detail(s, number)
    assert len(detail["claimed_by"]) == 1


async def test_a_group_claim_others_join_and_share_the_hours(wechat, service, members):
    number = await approved(wechat)
    assert "团队认领成功" in await wechat.send(LIU, f"认领 {number} 团队")
    wall = await wechat.send(ZHAO, "心愿墙")
    assert number in wall and "团队认领中" in wall
    assert "已加入" in await wechat.send(ZHAO, f"加入 {number}")
    assert "加入了您的团队" in await last_notice(service, LIU)
    assert "2人平分" in await wechat.send(ZHAO, f"圆梦 {number} 一起换好了 用时2小时")
    await wechat.send(ZHANG, f"确认 {number}")
    assert "1小时" in await wechat.send(ZHAO, "我的服务") and "1小时" in await wechat.send(LIU, "我的服务")


async def test_not_done_goes_back_to_the_member_and_tells_the_committee(wechat, service, members):
    number = await approved(wechat)
    await wechat.send(LIU, f"认领 {number}")
    await wechat.send(LIU, f"圆梦 {number} 换好了 用时1小时")
    assert "1 已完成" in await wechat.send(ZHANG, "7")  # not a choice: asked again
    back = await wechat.send(ZHANG, "2")
    assert f"编号：{number}" in back and "继续" in back
    assert (await wish(service, number)).status == "claimed"
    assert "还没有完成" in await last_notice(service, LIU)
    assert "没有完成" in await last_notice(service, CHEN)
    assert await open_question(service.ctx, ZHANG) is None


async def test_words_the_classifier_reads_as_a_wish_are_asked_about(wechat, service, members):
    offer = await wechat.send(ZHANG, "我想要一副老花镜，眼睛看不清了")
    assert "登记为微心愿吗" in offer and "1 是" in offer and "2 不是，按问题反映" in offer
    number = number_in(await wechat.send(ZHANG, "1"))
    assert (await wish(service, number)).text.startswith("我想要一副老花镜")

    await wechat.send(LI, "能不能有人帮我买点菜，腿脚不方便")
    receipt = await wechat.send(LI, "2")
    ticket_number = number_in(receipt)
    assert "微心愿" not in receipt and "反映的问题" in receipt
    async with service.ctx.sessions() as s:
        ticket = (await s.execute(select(Ticket).where(Ticket.number == ticket_number))).scalar_one()
        wished = (await s.execute(select(Wish).where(Wish.openid == LI))).scalars().all()
    assert "买点菜" in ticket.text and wished == []

    await wechat.send("o-unbound", "想请人帮忙换一下灯泡")  # nobody knows where they live
    refused = await wechat.send("o-unbound", "1")
    assert "绑定" in refused and "回复 2" in refused
    assert "编号" in await wechat.send("o-unbound", "2")  # still a problem for the duty desk


async def test_an_emergency_in_a_wish_dialogue_gets_advice_and_a_ticket(wechat, service, members):
    assert "请写上您的心愿" in await wechat.push(ZHANG, "event", Event="CLICK", EventKey="WISH")
    reply = await wechat.send(ZHANG, "厨房着火了，好大的烟")
    assert "119" in reply and "编号" in reply
    async with service.ctx.sessions() as s:
        assert (await s.execute(select(Ticket).where(Ticket.openid == ZHANG))).scalars().all()
        assert not (await s.execute(select(Wish).where(Wish.openid == ZHANG))).scalars().all()


async def test_the_menu_asks_for_the_wish_and_the_next_words_are_it(wechat, service, members):
    assert "请写上您的心愿" in await wechat.push(ZHANG, "event", Event="CLICK", EventKey="WISH")
    assert "多写几个字" in await wechat.send(ZHANG, "灯")
    number = number_in(await wechat.send(ZHANG, LAMP))
    assert (await wish(service, number)).text == LAMP
    again = await wechat.send(ZHANG, f"微心愿 {LAMP}")  # a double tap: the first one's receipt, one wish
    assert number_in(again) == number


async def test_past_the_limit_the_reply_says_why(wechat, service, members):
    service.ctx.wish_limits = Limits(max_open=2)
    a = number_in(await wechat.send(LI, "微心愿 眼睛花了，想要一副老花镜"))
    b = number_in(await wechat.send(LI, "微心愿 想请人修一下漏水的水龙头"))
    refused = await wechat.send(LI, "微心愿 想请人帮忙贴春联")
    assert "最多同时2个" in refused and a in refused and b in refused


async def test_a_reply_to_a_ticket_number_still_reaches_its_handler(wechat, service, members):
    ticket_number = number_in(await wechat.send(ZHANG, "楼道的灯坏了好几天了，晚上看不见"))
    assert "已发出" in await wechat.send(ZHANG, f"回复 {ticket_number} 晚上八点以后在家")
    number = await approved(wechat)
    assert "没有找到" in await wechat.send(LI, f"回复 {number} 你好")  # a wish's number: not his wish
    assert "没有找到编号" in await wechat.send(ZHANG, f"确认 {ticket_number}")


async def test_a_picture_goes_to_the_latest_matter(wechat, service, members):
    ticket_number = number_in(await wechat.send(ZHANG, "小区门口的路灯不亮了"))
    number = number_in(await wechat.send(ZHANG, f"微心愿 {LAMP}"))
    assert number in await wechat.push(ZHANG, "image", PicUrl="http://img/1.jpg", MediaId="m1")
    later = number_in(await wechat.send(ZHANG, "楼下垃圾桶满了好几天没人清理"))
    reply = await wechat.push(ZHANG, "image", PicUrl="http://img/2.jpg", MediaId="m2")
    assert later in reply and number not in reply and ticket_number != later


async def test_the_wall_pages_newest_first_and_a_digit_shows_how_to_claim(wechat, service, members):
    numbers = [await approved(wechat, f"想请人帮忙第{i}件小事", who=(ZHANG, LI)[i % 2]) for i in range(6)]
    # each resident has at most 3 open wishes: the sixth needed LI's third
    first = await wechat.send(LIU, "心愿墙")
    assert numbers[-1] in first and numbers[0] not in first and "下一页" in first
    second = await wechat.send(LIU, "下一页")
    assert f"6. 编号 {numbers[0]}" in second
    assert f"认领 {numbers[0]}" in await wechat.send(LIU, "6")


async def test_a_review_needs_a_reason_to_refuse_and_a_known_kind(wechat, service, members):
    number = number_in(await wechat.send(LI, "微心愿 想要一台新电视"))
    assert "要写原因" in await wechat.send(CHEN, f"审核 {number} 不通过")
    assert "类别请写" in await wechat.send(CHEN, f"审核 {number} 通过 帮扶")
    assert "已不通过" in await wechat.send(CHEN, f"审核 {number} 不通过 不在微心愿的范围")
    notice = (await outbox(service, LI))[-1]
    assert "不在微心愿的范围" in notice.text and notice.phrase == "未通过"


async def test_registering_as_a_short_dialogue(wechat, service, people):
    assert "在职党员" in await wechat.send(LI, "报到")  # not a Party member
    assert "工作单位" in await wechat.send(LIU, "报到")
    assert "特长" in await wechat.send(LIU, "区税务局")
    assert "还没有认领" in await wechat.send(LIU, "我的服务")  # a command on the way: answered, the dialogue goes on
    assert "时间" in await wechat.send(LIU, "水电维修")
    assert "哪个社区" in await wechat.send(LIU, "周末")  # not bound to a home, and two communities
    assert "哪个社区" in await wechat.send(LIU, "不知道")
    assert "报到成功" in await wechat.send(LIU, "幸福里")
    async with service.ctx.sessions() as s:
        member = await s.get(wishes.PartyMember, LIU)
    assert (member.unit, member.skills, member.time_offered) == ("区税务局", "水电维修", "周末")


async def test_hours_asked_for_take_a_bare_answer(wechat, service, members):
    number = await approved(wechat)
    await wechat.send(LIU, f"认领 {number}")
    assert "多长时间" in await wechat.send(LIU, f"圆梦 {number} 修好了")
    assert "没看懂" in await wechat.send(LIU, "很快")
    assert "2小时" in await wechat.send(LIU, "2")
    assert (await wish(service, number)).minutes == 120


async def test_a_number_with_110_or_120_in_it_is_no_emergency(wechat, service, members):
    """`认领 101105` names a wish (one number in 30 or so holds 110, 119 or 120); only those numbers on their
    own are the emergency numbers."""
    for text in ("认领 101105", "确认 112015", "撤回 101203"):
        reply = await wechat.send(LIU if text.startswith("认领") else ZHANG, text)
        assert "没有找到编号" in reply and "紧急" not in reply
    async with service.ctx.sessions() as s:
        assert (await s.execute(select(Ticket))).scalars().all() == []
    assert "110" in await wechat.send(LI, "有人在楼下打架，快打110")  # still an emergency
