"""The committee's commands for deliberation and votes (四民工作法), until the chat and the console have them.

    linli import owners FILE.csv
    linli vote open|close|result|bulletin|paper|participation|objections|answer|finalise|annul ...
    linli proposal list|show|accept|decline|merge|task|complete|close|hide-comment ...
    linli meeting schedule|minutes|options ...
    linli convention list --community C
    linli captain add --openid O --community C --building B
    linli deliberation settings --community C [...]
    linli bench vote [--ballots N]

ID / N / M: a vote's, proposal's or meeting's number as printed (id + check digit, e.g. 100013) or its bare
id (10001); the number wins when both fit. Times (--closes, --at, --deadline) are ISO 8601; without an offset
they are China time (UTC+8). Every command runs the migrations on DATABASE_URL first; it acts with the
committee's powers, under the name given with --by (default 社区管理员). docs/deliberation.md has it all.
"""
from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from bot.config import migrated_database_url
from handlers import meetings, outcomes, proposals, votes
from handlers.actors import Actor
from handlers.deliberation_rules import NotAllowed
from handlers.deliberation_settings import SETTINGS, set_order
from handlers.meetings import meeting_options
from handlers.texts import local_time
from storage import proposals as proposal_repo
from storage import votes as vote_repo
from storage.commit import commit
from storage.db import create_engine, sessionmaker
from storage.decimals import parse_decimal
from storage.ids import IdAllocator
from storage.models import Building, BuildingCaptain, Objection
from storage.owners import import_owners
from storage.writer import Conflict

CHINA = timezone(timedelta(hours=8))
FIRST_ID = 10000  # bot.app.FIRST_TICKET_ID: the shared number space


class Refused(Exception):
    """The command cannot do what was asked; the message is for the person at the terminal."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time(text: str) -> datetime:
    """ISO 8601 to naive UTC; a time without an offset is China time."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2026-12-20T18:00)") from None
    return (at if at.tzinfo else at.replace(tzinfo=CHINA)).astimezone(UTC).replace(tzinfo=None)


def _subcommands(parser: argparse.ArgumentParser):
    """The subparsers of a command another module registered (`import`, `bench`)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _run(work) -> int:
    """Run `work(sessions, ids, now)` on DATABASE_URL (migrated); Refused and the rules' refusals exit 1."""
    url = migrated_database_url()

    async def main() -> int:
        engine = create_engine(url)
        ids = IdAllocator(engine, "tickets", start=FIRST_ID, block=1, max_block=1)  # a command takes one or two
        try:
            return await work(sessionmaker(engine), ids, _now()) or 0
        except (Refused, votes.VoteError, NotAllowed, LookupError, Conflict) as exc:
            print(_refusal(exc))
            return 1
        finally:
            await ids.settled()
            await engine.dispose()

    return asyncio.run(main())


def _refusal(exc: Exception) -> str:
    if isinstance(exc, Conflict):
        return "没有办成：有人同时改了它，请重试。"
    if isinstance(exc, NotAllowed):
        return f"现在不能这样做（{exc}）"
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _json(doc) -> None:
    print(json.dumps(doc, ensure_ascii=False, default=str))


async def _done(sessions, done: proposals.Done) -> int:
    if done.unit is None:
        raise Refused(done.reply)
    await commit(sessions, done.unit)
    print(done.reply)
    return 0


def register(commands) -> None:
    """Add the deliberation commands to the `linli` program (after admin_cli and bench registered theirs)."""
    owners = _subcommands(commands.choices["import"]).add_parser(
        "owners", help="导入业主名册（列：community,building,unit,room,owner_id,owner_name,owner_code）/ the owners' register")
    owners.add_argument("file", type=Path)
    owners.set_defaults(run=run_import_owners)
    from bot import vote_bench

    vote_bench.register(_subcommands(commands.choices["bench"]))
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default="", help="who does it (name on the timeline; default 社区管理员)")

    vote = commands.add_parser("vote", help="votes (表决): open, close, results, bulletin, paper ballots")
    v = vote.add_subparsers(dest="vote_command", required=True)
    op = v.add_parser("open", parents=[by], help="发起表决，最后一行打印 {\"id\": …} / open a vote")
    op.add_argument("--community", required=True, help="community code")
    op.add_argument("--title", required=True)
    op.add_argument("--rule", required=True, choices=["simple", "art278-ordinary", "art278-major", "budget"])
    op.add_argument("--options", help='comma separated, option 1 first (default: the meeting\'s, or "同意,反对,弃权")')
    op.add_argument("--scope", default="community", help="community, grid:CODE or building:NAME")
    op.add_argument("--unit", choices=list(vote_repo.UNITS), help="owners | household | resident")
    op.add_argument("--closes", type=parse_time, help="ISO time (China time without an offset); default in 7 days")
    op.add_argument("--advisory", action="store_true", help="征询: counted, binding nobody")
    op.add_argument("--secret", action="store_true", help="不记名: the bulletin and staff views name nobody")
    op.add_argument("--quorum", default="", help="simple/budget: share of the roll that must vote, e.g. 1/2")
    op.add_argument("--approval", default="", help="simple: share of the voters for option 1, e.g. '>1/2'")
    op.add_argument("--proposal", help="the proposal (议题) voted on; default: a new matter with the title")
    op.add_argument("--convention", default="", help="the 微公约 text this vote adopts if it passes")
    op.add_argument("--budget", help="budget: the money available (元)")
    op.add_argument("--project", action="append", default=[], help='budget: "title=cost", once per project')
    op.add_argument("--objection-days", type=int, help="公示期 in days (default: the community's, 7)")
    op.set_defaults(run=run_vote_open)
    for name, helptext, fn in (("close", "现在截止、计票、进入公示期 / close, count, publish", run_vote_close),
                               ("finalise", "公示期满、异议已答复后定为最终结果 / make the result final",
                                run_vote_finalise)):
        p = v.add_parser(name, parents=[by], help=helptext)
        p.add_argument("id")
        p.set_defaults(run=fn)
    result = v.add_parser("result", help="表决结果（进行中只看参与情况）/ the result")
    result.add_argument("id")
    result.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    result.set_defaults(run=run_vote_result)
    bulletin = v.add_parser("bulletin", help="计入的选票和凭证（截止后）/ the bulletin")
    bulletin.add_argument("id")
    bulletin.add_argument("--json", action="store_true")
    bulletin.set_defaults(run=run_vote_bulletin)
    paper = v.add_parser("paper", parents=[by], help="enter a paper ballot (纸质票)")
    paper.add_argument("id")
    who = paper.add_mutually_exclusive_group(required=True)
    who.add_argument("--owner", help="the owner's owner_id in the register")
    who.add_argument("--household", help="the household code (household votes)")
    paper.add_argument("--choice", type=int, help="option number")
    paper.add_argument("--picks", default="", help="budget: project numbers, e.g. 1,3")
    paper.set_defaults(run=run_vote_paper)
    part = v.add_parser("participation", help="按楼栋看谁投了票（不看投什么）和离2/3还差多少 / participation")
    part.add_argument("id")
    part.set_defaults(run=run_vote_participation)
    objections = v.add_parser("objections", help="对结果的异议和答复 / objections")
    objections.add_argument("id")
    objections.set_defaults(run=run_vote_objections)
    answer = v.add_parser("answer", parents=[by], help="答复一条异议 / answer an objection")
    answer.add_argument("objection", type=int)
    answer.add_argument("--text", required=True)
    answer.set_defaults(run=run_vote_answer)
    annul = v.add_parser("annul", parents=[by], help="异议成立，宣布表决无效 / annul a vote")
    annul.add_argument("id")
    annul.add_argument("--reason", required=True)
    annul.set_defaults(run=run_vote_annul)

    proposal = commands.add_parser("proposal", help="proposals (议题): list, show, accept, decline, merge, tasks")
    p = proposal.add_subparsers(dest="proposal_command", required=True)
    lst = p.add_parser("list", help="社区的议题（含热点候选）/ proposals")
    lst.add_argument("--community", required=True)
    lst.add_argument("--status", action="append", help="only these statuses (repeat)")
    lst.set_defaults(run=run_proposal_list)
    show = p.add_parser("show", help="一个议题和它的经过 / a proposal")
    show.add_argument("id")
    show.set_defaults(run=run_proposal_show)
    for name, helptext in (("accept", "受理"), ("complete", "事情办完了，请投票人评价（民事民评）/ ask for ratings"),
                           ("close", "end the rating (民事民评)")):
        c = p.add_parser(name, parents=[by], help=helptext)
        c.add_argument("id")
        c.set_defaults(run=_step(STEPS[name]))
    decline = p.add_parser("decline", parents=[by], help="不受理, with the reason the proposer is told")
    decline.add_argument("id")
    decline.add_argument("--reason", required=True)
    decline.set_defaults(run=_step(STEPS["decline"]))
    merge = p.add_parser("merge", parents=[by], help="把重复的议题并入另一个 / merge")
    merge.add_argument("id")
    merge.add_argument("--into", required=True)
    merge.add_argument("--reason", default="")
    merge.set_defaults(run=_step(STEPS["merge"]))
    task = p.add_parser("task", parents=[by], help="民事民办: a task (a ticket) for the responsible body")
    task.add_argument("id")
    task.add_argument("--body", required=True, choices=list(outcomes.BODIES))
    task.add_argument("--text", required=True)
    task.add_argument("--deadline", required=True, type=parse_time)
    task.add_argument("--category", default="other", help="a category code (its response limit applies)")
    task.set_defaults(run=_step(STEPS["task"]))
    hide = p.add_parser("hide-comment", parents=[by], help="隐藏一条发言（原文和理由留档）/ hide a comment")
    hide.add_argument("comment", type=int)
    hide.add_argument("--reason", required=True)
    hide.set_defaults(run=_step(STEPS["hide-comment"]))

    meeting = commands.add_parser("meeting", help="议事会: schedule, minutes, options for the vote")
    m = meeting.add_subparsers(dest="meeting_command", required=True)
    schedule = m.add_parser("schedule", parents=[by], help="为议题安排议事会 / schedule a meeting")
    schedule.add_argument("--proposal", required=True)
    schedule.add_argument("--at", required=True, type=parse_time)
    schedule.add_argument("--place", required=True)
    schedule.set_defaults(run=_step(STEPS["schedule"]))
    minutes = m.add_parser("minutes", parents=[by], help="record the minutes (纪要)")
    minutes.add_argument("id")
    minutes.add_argument("--text", required=True)
    minutes.set_defaults(run=_step(STEPS["minutes"]))
    options = m.add_parser("options", parents=[by], help="记录议定的表决选项 / the options")
    options.add_argument("id")
    options.add_argument("--options", required=True, help="comma separated, option 1 first")
    options.set_defaults(run=_step(STEPS["options"]))

    convention = commands.add_parser("convention", help="微公约 adopted by votes")
    cl = convention.add_subparsers(dest="convention_command", required=True).add_parser("list", help="列出已通过的微公约 / adopted conventions")
    cl.add_argument("--community", required=True)
    cl.set_defaults(run=run_convention_list)

    captain = commands.add_parser("captain", help="楼栋长: who follows participation in a building")
    ca = captain.add_subparsers(dest="captain_command", required=True).add_parser("add", help="登记楼栋长 / add a building captain")
    ca.add_argument("--openid", required=True, help="the person's openid (see `linli staff list` for staff)")
    ca.add_argument("--community", required=True)
    ca.add_argument("--building", required=True)
    ca.add_argument("--name", default="")
    ca.set_defaults(run=run_captain_add)

    deliberation = commands.add_parser("deliberation", help="社区的议事规则 / rules of order")
    ds = deliberation.add_subparsers(dest="deliberation_command", required=True).add_parser("settings", help="查看或修改议事规则 / settings")
    ds.add_argument("--community", required=True)
    for name in SETTINGS:
        ds.add_argument("--" + name.replace("_", "-"), type=Decimal if name == "cosign_percent" else int)
    ds.set_defaults(run=run_settings)


async def _community(session, code: str):
    community = await vote_repo.community_by_code(session, code)
    if community is None:
        raise Refused(f"没有社区 {code}")
    return community


def _lines(rows: list[str], empty: str) -> None:
    print("\n".join(rows) if rows else empty)


def _actor(args) -> Actor:
    return Actor.cli(getattr(args, "by", "") or "")


# ---- import ------------------------------------------------------------------------------------------------------
def run_import_owners(args) -> int:
    if not args.file.is_file():
        print(f"找不到文件：{args.file}")
        return 1

    async def work(sessions, _ids, _now):
        report = await import_owners(sessions, args.file)
        print(f"{args.file}：{report.summary()}")
        return 0 if report.ok else 1

    return _run(work)


# ---- votes ----------------------------------------------------------------------------------------------------------
def _scope(text: str) -> tuple[str, str | None]:
    kind, _, ref = text.partition(":")
    if kind not in vote_repo.SCOPES or (kind != "community") != bool(ref):
        raise Refused("--scope 应为 community、grid:网格编号 或 building:楼栋名")
    return kind, ref or None


def run_vote_open(args) -> int:
    async def work(sessions, ids, now):
        scope, ref = _scope(args.scope)
        proposal_id = None
        if args.proposal:
            async with sessions() as session:
                found = await proposal_repo.find_proposal(session, args.proposal)
            if found is None:
                raise Refused("没有这个议题")
            proposal_id = found.id
        options = args.options.split(",") if args.options else (
            await meeting_options(sessions, proposal_id) if proposal_id else []) or ["同意", "反对", "弃权"]
        try:
            projects = [(title.strip(), parse_decimal(cost)) for title, _, cost in
                        (p.rpartition("=") for p in args.project)]
            budget = parse_decimal(args.budget) if args.budget else None
        except ValueError:
            raise Refused('--project 写成 "项目名=金额"，--budget 写金额') from None
        spec = votes.VoteSpec(community=args.community, title=args.title, rule=args.rule, options=options,
                              scope=scope, scope_ref=ref, unit=args.unit, closes_at=args.closes,
                              advisory=args.advisory, secret=args.secret, quorum=args.quorum, approval=args.approval,
                              budget=budget, projects=projects, convention=args.convention, proposal_id=proposal_id,
                              objection_days=args.objection_days)
        opened = await votes.open_vote(sessions, ids, spec, actor=_actor(args), now=now)
        await commit(sessions, opened.unit)
        print(f"表决已开始：编号 {opened.number}，{opened.voters} 个投票单位，已通知 {opened.notified} 人")
        if opened.unregistered:
            print(f"注意：{opened.unregistered} 户不在业主名册里，面积和人数照算，但没有人能替它们投票")
        _json({"id": opened.vote_id, "number": opened.number, "proposal": opened.proposal_id})

    return _run(work)


def run_vote_close(args) -> int:
    async def work(sessions, _ids, now):
        doc = await votes.close_vote(sessions, args.id, now=now, actor=_actor(args))
        print(f"表决已截止并公示到{local_time(datetime.fromisoformat(doc['objection_until']))}："
              f"{'通过' if doc['passed'] else '未通过'}")
        _json(doc)

    return _run(work)


def run_vote_finalise(args) -> int:
    async def work(sessions, _ids, now):
        outcome = await votes.finalise_vote(sessions, args.id, now=now, actor=_actor(args))
        print({"final": "结果已生效", "waiting": "公示期还没到", "unanswered": "还有异议没有答复"}[outcome])
        return 0 if outcome == "final" else 1

    return _run(work)


def run_vote_result(args) -> int:
    async def work(sessions, _ids, _now):
        doc = await votes.result_document(sessions, args.id)
        if args.json:
            _json(doc)
        elif not doc["closed"]:
            print(f"进行中：已投 {doc['ballots']}/{doc['total_headcount']}，面积 {doc['participating_area']}/"
                  f"{doc['total_area']}（截止前不显示各选项票数）")
        else:
            print("，".join(f"{name} {doc['counts'][str(i)]}" for i, name in enumerate(doc["options"], 1))
                  + f"；{'通过' if doc['passed'] else '未通过'}")

    return _run(work)


def run_vote_bulletin(args) -> int:
    async def work(sessions, _ids, _now):
        doc = await votes.bulletin(sessions, args.id)
        if args.json:
            _json({"ballots": doc["ballots"], "number": doc["number"], "secret": doc["secret"]})
        else:
            for b in doc["ballots"]:
                print(f"{b['receipt']}  {b['choice']}" + ("  " + " ".join(b["flats"]) if "flats" in b else ""))

    return _run(work)


def run_vote_paper(args) -> int:
    async def work(sessions, _ids, now):
        try:
            picks = tuple(int(p) for p in args.picks.split(",") if p.strip())
        except ValueError:
            raise Refused("--picks 写项目号，如 1,3") from None
        cast = await votes.paper_ballot(sessions, vote_ref=args.id, owner=args.owner, household=args.household,
                                        choice=args.choice, picks=picks, by=args.by or "社区管理员",
                                        actor=_actor(args), now=now)
        if cast.unit is None:
            raise Refused(cast.reply)
        await commit(sessions, cast.unit)
        print(cast.reply)

    return _run(work)


def run_vote_participation(args) -> int:
    async def work(sessions, _ids, _now):
        view = await votes.participation_view(sessions, args.id, _actor(args))
        rows = ([("全部", view.whole)] if view.whole else []) + sorted(view.buildings.items())
        print(f"表决 编号 {view.number}：{view.title}（只显示谁投了，不显示投了什么）")
        for name, p in rows:
            print(f"{name}：已投 {p.voted_headcount}/{p.total_headcount} 人，面积 {p.voted_area}/{p.total_area}；"
                  f"离三分之二还差 {p.headcount_short} 人、{p.area_short} 平方米")
        for name, flats in sorted(view.not_voted.items()):
            print(f"{name} 未投：{' '.join(flats)}")

    return _run(work)


def run_vote_objections(args) -> int:
    async def work(sessions, _ids, _now):
        async with sessions() as session:
            vote = await vote_repo.find_vote(session, args.id)
            if vote is None:
                raise Refused("没有这个表决")
            rows = (await session.execute(select(Objection).where(Objection.vote_id == vote.id)
                                          .order_by(Objection.id))).scalars().all()
        _lines([f"{o.id}  {local_time(o.at)}  {o.text}  →  {o.answer or '（未答复）'}" for o in rows], "没有异议")

    return _run(work)


def run_vote_answer(args) -> int:
    async def work(sessions, _ids, now):
        await commit(sessions, await votes.answer_objection(sessions, args.objection, answer=args.text,
                                                            actor=_actor(args), now=now))
        print("已答复")

    return _run(work)


def run_vote_annul(args) -> int:
    async def work(sessions, _ids, now):
        await commit(sessions, await votes.annul_vote(sessions, args.id, reason=args.reason, actor=_actor(args),
                                                      now=now))
        print("表决已作废，议题回到商议")

    return _run(work)


# ---- proposals and meetings ------------------------------------------------------------------------------------------------
def run_proposal_list(args) -> int:
    async def work(sessions, _ids, _now):
        async with sessions() as session:
            community = await _community(session, args.community)
            rows = [f"{p.number}  {proposals.STATUS_NAMES.get(p.status, p.status)}  "
                    f"{await proposal_repo.supporters(session, p.id)}户  {p.title}"
                    for p in await proposal_repo.proposals_of(session, community.id, args.status)]
        _lines(rows, "没有议题")

    return _run(work)


def run_proposal_show(args) -> int:
    async def work(sessions, _ids, _now):
        view = await proposals.proposal_view(sessions, args.id, comments=20)
        if view is None:
            raise Refused("没有这个议题")
        print(view)
        async with sessions() as session:
            proposal = await proposal_repo.find_proposal(session, args.id)
            for e in await proposal_repo.timeline(session, proposal.id):
                print(f"  {local_time(e.at)}  {e.actor}  {e.action}  {e.note}")

    return _run(work)


def _step(use_case):
    """A command that runs one use case returning a proposals.Done: use_case(args, sessions, ids, now)."""
    def run(args) -> int:
        async def work(sessions, ids, now):
            return await _done(sessions, await use_case(args, sessions, ids, now))

        return _run(work)

    return run


STEPS = {
    "accept": lambda a, s, ids, now: proposals.accept(s, ref=a.id, actor=_actor(a), now=now),
    "complete": lambda a, s, ids, now: outcomes.complete(s, ref=a.id, actor=_actor(a), now=now),
    "close": lambda a, s, ids, now: outcomes.close_evaluation(s, ref=a.id, actor=_actor(a), now=now),
    "decline": lambda a, s, ids, now: proposals.decline(s, ref=a.id, reason=a.reason, actor=_actor(a), now=now),
    "merge": lambda a, s, ids, now: proposals.merge(s, ref=a.id, into=a.into, reason=a.reason, actor=_actor(a),
                                                    now=now),
    "task": lambda a, s, ids, now: outcomes.create_task(
        s, ids, ref=a.id, task=outcomes.Task(a.body, a.text, a.deadline, a.category), actor=_actor(a), now=now),
    "hide-comment": lambda a, s, ids, now: proposals.hide_comment(s, comment_id=a.comment, reason=a.reason,
                                                                  actor=_actor(a), now=now),
    "schedule": lambda a, s, ids, now: meetings.schedule_meeting(s, ids, ref=a.proposal, starts_at=a.at,
                                                                 place=a.place, actor=_actor(a), now=now),
    "minutes": lambda a, s, ids, now: meetings.record_minutes(s, ref=a.id, minutes=a.text, actor=_actor(a), now=now),
    "options": lambda a, s, ids, now: meetings.record_options(s, ref=a.id, options=a.options.split(","),
                                                              actor=_actor(a), now=now),
}


# ---- conventions, captains, settings ------------------------------------------------------------------------------------------
def run_convention_list(args) -> int:
    async def work(sessions, _ids, _now):
        async with sessions() as session:
            community = await _community(session, args.community)
            listed = await proposal_repo.conventions(session, community.id)
        _lines([f"{c.title}（表决 编号 {number}，{local_time(c.adopted_at)}通过）：{c.text}" for c, number in listed],
               "还没有通过的微公约")

    return _run(work)


def run_captain_add(args) -> int:
    async def work(sessions, _ids, now):
        async with sessions() as session, session.begin():
            community = await _community(session, args.community)
            building = (await session.execute(select(Building).where(
                Building.community_id == community.id, Building.name == args.building))).scalar_one_or_none()
            if building is None:
                raise Refused(f"社区 {args.community} 没有 {args.building}")
            if await session.get(BuildingCaptain, (args.openid, building.id)) is None:
                session.add(BuildingCaptain(openid=args.openid, building_id=building.id, name=args.name,
                                            created_at=now))
        print(f"已设为 {args.building} 的楼栋长")

    return _run(work)


def run_settings(args) -> int:
    async def work(sessions, _ids, _now):
        async with sessions() as session, session.begin():
            community = await _community(session, args.community)
            order = await set_order(session, community.id, **{n: getattr(args, n) for n in SETTINGS})
        print("；".join(f"{n} = {getattr(order, n)}" for n in SETTINGS))

    return _run(work)
