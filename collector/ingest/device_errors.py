"""What a box's status ``err`` means, for a supervisor: a stable code, a sentence in zh and en, what to do.

The firmware reports its last error as short English prose (``App.report`` in
``firmware/app.py``: at most 80 printable characters), written for whoever
reads the box's console. The devices page shows the sentence this table gives
instead, and keeps the firmware's text only in a details element.

Each entry matches the firmware's text by a regular expression anchored at
its start (the fields the firmware fills in — a key, a count, a host — are
named groups the sentences use). An ``err`` that is already a code from this
table (a later firmware may send codes) maps to itself, so both forms are
understood. Strings earlier firmware sent (``ack names … ids not in the
outbox``, a repeat ack that is no error) stay in the table for boxes not yet
updated. ``tests/collector/test_device_errors.py`` collects every string the
firmware can put in ``err`` from its source and checks that each maps here.

The collector's own findings about a box (``COLLECTOR``: silent too long, an
outbox backlog, a config not taken) use the same shape, so the page and the
alerts speak of them alike.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class DeviceError:
    """One kind of device error: ``zh``/``en`` say what happened, ``do_zh``/``do_en`` what to do."""

    code: str
    zh: str
    en: str
    do_zh: str
    do_en: str
    patterns: tuple[str, ...] = ()
    serious: bool = True  # False: informational (the box recovered by itself), shown without a warning mark


@dataclasses.dataclass(frozen=True)
class Explained:
    """A raw ``err`` explained: the code, the sentences with the firmware's fields filled in, the raw text."""

    code: str
    zh: str
    en: str
    do_zh: str
    do_en: str
    raw: str
    known: bool
    serious: bool

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def action(self, lang: str) -> str:
        return self.do_en if lang == "en" else self.do_zh

    def json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


_CHECK_LINK_ZH = "检查设备的网络连接（网线/Wi-Fi 信号）和服务端是否在运行；若持续出现，请联系运维。"
_CHECK_LINK_EN = (
    "Check the box's network (cable / Wi-Fi signal) and that the server is running; if it persists, call IT."
)
_CALL_IT_ZH = "设备可继续使用；若反复出现，请联系运维检查或更换设备。"
_CALL_IT_EN = "The box keeps working; if this recurs, ask IT to check or replace it."
_NOTHING_ZH = "无需处理。"
_NOTHING_EN = "Nothing to do."
_HOST = r"[^\s:]+(?::\d+)?"  # host[:port] as the firmware writes it

ERRORS: tuple[DeviceError, ...] = (
    DeviceError(
        "memory",
        "设备内存不足，已自动释放后继续运行{where_zh}",
        "The box ran short of memory and recovered{where_en}",
        "偶尔出现无需处理；若频繁出现（次数持续增加），请联系运维升级固件或更换设备。",
        "Occasional: nothing to do. If the count keeps rising, ask IT to update the firmware or replace the box.",
        (r"MemoryError\b(?P<detail>.*)$", r"memory$"),
    ),
    DeviceError(
        "key_beyond_scale",
        "按下了评价档位以外的按键[（第 {key} 键，本机为 {scale} 档评价）]，该次按键未计入",
        "A key beyond the rating scale was pressed[ (key {key}, {scale}-level box)]; it was not counted",
        "检查设备的按键面板与配置的评价档位是否一致（如 3 键面板配成了 2 档）。",
        "Check that the key panel matches the configured scale (e.g. a 3-key panel on a 2-level box).",
        (r"key (?P<key>\d+) beyond the scale 1\.\.(?P<scale>\d+)", r"beyond_scale$"),
    ),
    DeviceError(
        "outbox_full",
        "设备待发送评价已满[（{n} 条未确认）]，新的评价暂时无法保存",
        "The box's outbox is full[ ({n} unconfirmed ratings)]; new ratings cannot be saved for now",
        "设备长时间未能把评价传给服务端：请立即检查设备网络和服务端；恢复连接后会自动补传。",
        "The box has not reached the server for a long time: check its network and the server now; "
        "it sends the backlog once connected.",
        (r"outbox full(?:: (?P<n>\d+) unacked events)?", r"outbox_full$"),
    ),
    DeviceError(
        "flash_write",
        "设备存储写入失败，评价可能未保存",
        "The box could not write to its storage; a rating may not have been saved",
        "请联系运维检查设备存储；若反复出现，请更换设备。",
        "Ask IT to check the box's storage; replace the box if this recurs.",
        (r"flash write failed", r"segment write failed"),
    ),
    DeviceError(
        "flash_maintenance",
        "设备存储整理失败（不影响已保存的评价）",
        "The box's storage upkeep failed (saved ratings are not affected)",
        _CALL_IT_ZH,
        _CALL_IT_EN,
        (r"flash maintenance failed",),
    ),
    DeviceError(
        "storage_damaged",
        "设备存储中有损坏的记录，已隔离[（{what}）]",
        "Damaged records were found in the box's storage and set apart[ ({what})]",
        "损坏的记录无法上传，可能少计评价。请联系运维导出设备日志并检查存储。",
        "Damaged records cannot be sent: ratings may be missing. Ask IT to read the box's log and check its storage.",
        (r"quarantined (?P<what>[^\s:]+)", r"lost segment (?P<what>[^\s:]+)", r"boot counter damaged"),
    ),
    DeviceError(
        "duty_not_saved",
        "当班民警签到信息未能保存到设备存储（断电后需重新签到）",
        "The signed-in officer could not be saved on the box (after a power cut, sign in again)",
        "断电重启后请民警重新签到；若反复出现，请联系运维检查设备存储。",
        "After a power cut the officer signs in again; if this recurs, ask IT to check the box's storage.",
        (r"duty not persisted",),
    ),
    DeviceError(
        "config_not_saved",
        "新配置已生效但未能保存到设备存储（断电后恢复旧配置）",
        "The new settings are in use but could not be saved on the box (a power cut brings back the old ones)",
        "服务端会在设备下次上报时重新下发；若反复出现，请联系运维检查设备存储。",
        "The server sends them again at the box's next status; if this recurs, ask IT to check its storage.",
        (r"config not persisted",),
    ),
    DeviceError(
        "downlink_bad_key",
        "设备收到的服务端指令签名不符，已拒收（设备密钥与服务端不一致）",
        "The box refused a message from the server: its signature does not match (the box's key differs)",
        "请运维重新为该设备配置密钥（evalbox provision），确认设备编号与服务端登记一致。",
        "Ask IT to provision the box's key again (evalbox provision) and check its id matches the registry.",
        (r"downlink rejected: (?:bad_mac|no_mac|wrong_device)\b",),
    ),
    DeviceError(
        "downlink_rejected",
        "设备拒收了一条服务端指令[（格式不符：{reason}）]",
        "The box refused a message from the server[ (malformed: {reason})]",
        "通常是设备固件与服务端版本不匹配：请运维将设备固件升级到与服务端一致的版本。",
        "Usually the box's firmware and the server's version differ: ask IT to update the firmware.",
        (r"downlink rejected: (?P<reason>\w+)",),
    ),
    DeviceError(
        "send_failed",
        "评价上传失败，稍后自动重发（评价保存在设备中，不会丢失）",
        "Sending ratings failed; the box retries (they stay saved on the box, nothing is lost)",
        _CHECK_LINK_ZH,
        _CHECK_LINK_EN,
        (r"send failed", r"status failed"),
        serious=False,
    ),
    DeviceError(
        "fw_state_not_sent",
        "设备的固件升级状态未能上报，连接恢复后自动重报",
        "The box could not report its firmware update state; it reports it again when the link is back",
        _CHECK_LINK_ZH,
        _CHECK_LINK_EN,
        (r"firmware state not sent",),
        serious=False,
    ),
    DeviceError(
        "fw_update_problem",
        "设备的固件升级出现问题，设备继续运行原版本",
        "A firmware update on the box ran into a problem; the box keeps running its current version",
        "在设备列表查看该设备的升级状态与原因（详情）；如反复出现，请运维检查发布包、设备存储空间与升级批次的状态。",
        "See the box's update state and reason in the devices list (details); if it repeats, ask IT to check the "
        "release, the box's free flash and the rollout's state.",
        (r"firmware update: ",),
    ),
    DeviceError(
        "unsendable_event",
        "设备中有一条评价无法编码上传[（评价 {ev}）]，已保留在设备中",
        "One rating on the box cannot be encoded for sending[ (rating {ev})]; it is kept on the box",
        "请联系运维：需要升级固件后才能上传这条评价。",
        "Call IT: the firmware needs an update before this rating can be sent.",
        (r"unsendable event (?P<ev>\d+/\d+)",),
    ),
    DeviceError(
        "broker_lost",
        "设备与服务端的连接中断，正在自动重连",
        "The box lost its connection to the server and is reconnecting",
        _CHECK_LINK_ZH,
        _CHECK_LINK_EN,
        (r"broker connection lost", r"not connected", r"bad remaining length", r"packet of \d+ bytes refused"),
        serious=False,
    ),
    DeviceError(
        "server_unreachable",
        "设备连不上服务端[（{host}）]",
        "The box cannot reach the server[ ({host})]",
        "检查设备网络、服务端地址与端口配置，以及服务端（MQTT 代理）是否在运行。",
        "Check the box's network, the server address and port in its config, and that the MQTT broker runs.",
        (
            r"cannot resolve (?P<host>" + _HOST + ")",
            r"no socket for (?P<host>" + _HOST + ")",
            r"connect to (?P<host>" + _HOST + ") failed",
            r"no CONNACK from (?P<host>" + _HOST + ")",
        ),
    ),
    DeviceError(
        "server_refused",
        "服务端拒绝了设备的连接[（代码 {rc}）]",
        "The server refused the box's connection[ (code {rc})]",
        "通常是设备的接入账号或密码与服务端不一致：请运维检查设备配置与 MQTT 代理的账号。",
        "Usually the box's broker user or password is wrong: ask IT to check the box's config and the broker's users.",
        (r"connection refused(?: \(code (?P<rc>-?\d+)\))?",),
    ),
    DeviceError(
        "dns_slow",
        "设备解析服务端域名用时过长[（{ms} 毫秒）]，会拖慢按键响应",
        "Looking up the server's name took the box too long[ ({ms} ms)]; it slows key response",
        "请运维在设备配置中把服务端地址改为 IP 地址。",
        "Ask IT to give the server as an IP address in the box's config.",
        (r"DNS lookup of \S+ took (?P<ms>\d+) ms",),
    ),
    DeviceError(
        "wifi",
        "设备未连上 Wi-Fi",
        "The box has not joined the Wi-Fi",
        "检查 Wi-Fi 是否正常、信号是否足够，以及设备配置中的网络名称和密码。",
        "Check the Wi-Fi works and reaches the window, and the network name and password in the box's config.",
        (r"Wi-Fi not joined",),
    ),
    DeviceError(
        "task_stalled",
        "设备程序卡住[（{task}）]，即将自动重启",
        "A part of the box's program stalled[ ({task})]; the box restarts itself",
        _CALL_IT_ZH,
        _CALL_IT_EN,
        (r"task stalled: (?P<task>\w+)",),
    ),
    DeviceError(
        "crashed",
        "设备程序出错后已自动重启",
        "The box's program failed and restarted itself",
        "评价不会丢失；若反复出现，请联系运维导出设备日志并升级固件。",
        "No rating is lost; if this recurs, ask IT to read the box's log and update the firmware.",
        (r"restarted after a crash",),
    ),
    DeviceError(
        "key_failed",
        "处理[第 {key} ]键时程序出错，该次按键未计入",
        "The box failed while handling a key[ ({key})]; that press was not counted",
        _CALL_IT_ZH,
        _CALL_IT_EN,
        (r"key (?P<key>\d+) failed",),
    ),
    DeviceError(
        "bad_ticket",
        "窗口电脑发来的业务号格式不符，本次邀请未发起",
        "The window PC sent a malformed ticket number; the invite was not opened",
        "请运维检查窗口电脑与评价器对接的业务号格式。",
        "Ask IT to check the ticket format the window PC sends.",
        (r"bad ticket\b",),
    ),
    DeviceError(
        "bad_officer_id",
        "签到的警号格式不符，签到未生效",
        "A sign-in with a malformed badge number was refused",
        "请核对民警警号后重新签到。",
        "Check the badge number and sign in again.",
        (r"bad officer id\b",),
    ),
    DeviceError(
        "repeat_ack",
        "服务端重复确认了已上传的评价（旧版固件的提示，不是故障）",
        "The server confirmed ratings the box had already sent again (an older firmware's notice, not a fault)",
        _NOTHING_ZH,
        _NOTHING_EN,
        (r"ack names \d+ ids not in the outbox",),
        serious=False,
    ),
)

# The collector's own findings about a box (not from its ``err``).
COLLECTOR: tuple[DeviceError, ...] = (
    DeviceError(
        "offline",
        "设备离线：超过规定时间未与服务端通信",
        "The box is offline: it has not been heard from for too long",
        "检查设备是否通电、网络是否正常；评价保存在设备中，恢复连接后自动补传。",
        "Check the box has power and network; ratings stay on the box and are sent once it is back.",
    ),
    DeviceError(
        "outbox_backlog",
        "设备待发送评价积压",
        "Ratings are piling up on the box",
        _CHECK_LINK_ZH,
        _CHECK_LINK_EN,
    ),
    DeviceError(
        "config_old",
        "设备仍在使用旧配置",
        "The box still runs an older config",
        "服务端会在设备下次上报状态时重新下发；若长时间不变，请检查设备连接。",
        "The server sends it again at the box's next status; if this persists, check the box's link.",
    ),
)

BY_CODE: dict[str, DeviceError] = {e.code: e for e in (*ERRORS, *COLLECTOR)}
_COMPILED: tuple[tuple[re.Pattern[str], DeviceError], ...] = tuple(
    (re.compile(p), e) for e in ERRORS for p in e.patterns
)
# where a MemoryError happened (the firmware's ``out_of_memory(where)``), said for a supervisor
_MEMORY_WHERE: tuple[tuple[str, str, str], ...] = (
    ("press not taken", "；该次按键未计入", "; that press was not counted"),
    ("dropped", "；一条消息被丢弃，稍后重发", "; one message was dropped and is sent again"),
    ("not sent", "；一条状态未发送，稍后重发", "; one status was not sent and is sent again"),
)


def _memory_fields(detail: str) -> dict[str, str]:
    for needle, zh, en in _MEMORY_WHERE:
        if needle in detail:
            return {"where_zh": zh, "where_en": en}
    return {"where_zh": "", "where_en": ""}


def explain(raw: str | None) -> Explained | None:
    """The error ``raw`` (a status ``err``) for a supervisor; None when there is none.

    An unknown text gets the code ``unknown`` and 未知错误 / Unknown error with
    the raw text kept (the page shows it only in a details element).
    """
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text in BY_CODE:  # already a code (a firmware that sends codes)
        return _filled(BY_CODE[text], {}, text)
    for pattern, entry in _COMPILED:
        m = pattern.match(text)
        if m:
            return _filled(entry, {k: v for k, v in m.groupdict().items() if v is not None}, text)
    return Explained(
        code="unknown",
        zh="未知错误",
        en="Unknown error",
        do_zh="请把“详情”中的原文告知运维。",
        do_en="Tell IT the original text shown under details.",
        raw=text,
        known=False,
        serious=True,
    )


_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


def _fill(template: str, fields: dict[str, str]) -> str:
    """``template`` with ``{field}``s filled; a ``[...]`` part is left out when a field in it is missing."""

    def part(m: re.Match[str]) -> str:
        inner = m.group(1)
        return inner if all(f in fields for f in _FIELD.findall(inner)) else ""

    return _OPTIONAL.sub(part, template).format_map(fields)


def _filled(entry: DeviceError, fields: dict[str, str], raw: str) -> Explained:
    if entry.code == "memory":
        fields = {**fields, **_memory_fields(fields.get("detail", ""))}
    return Explained(
        code=entry.code,
        zh=_fill(entry.zh, fields),
        en=_fill(entry.en, fields),
        do_zh=entry.do_zh,
        do_en=entry.do_en,
        raw=raw,
        known=True,
        serious=entry.serious,
    )


def collector_finding(code: str) -> Explained:
    """One of the collector's own findings (``COLLECTOR``) in the same shape."""
    entry = BY_CODE[code]
    return _filled(entry, {}, "")
