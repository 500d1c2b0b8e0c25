"""Report texts in Chinese (default) and English. Keys are short; a missing key shows the key (tested).
The labels of vocabulary words (severities, verdicts, finding statuses) come from scanner/core/labels.yaml."""

from __future__ import annotations

from typing import Any

from scanner.core.labels import labels_of
from scanner.core.vocab import FINDING_STATUSES, LANGS, SEVERITIES, VERDICTS

__all__ = ["LANGS", "TEXT", "pick", "t"]

TEXT: dict[str, dict[str, str]] = {
    "title": {"zh": "网络安全风险评估报告", "en": "Network security risk assessment report"},
    "subtitle": {"zh": "依据《中医医院信息与数字化建设规范（2024版）》第7章、GB/T 22239-2019、GB/T 39786-2021、GB/T 20984-2022",
                 "en": "Against chapter 7 of the TCM hospital informatisation specification (2024), GB/T 22239-2019, "
                       "GB/T 39786-2021 and GB/T 20984-2022"},
    "scan_id": {"zh": "扫描编号", "en": "Scan"},
    "scope": {"zh": "评估范围", "en": "Scope"},
    "period": {"zh": "评估时间", "en": "Assessed"},
    "generated": {"zh": "报告生成", "en": "Generated"},
    "baseline": {"zh": "基线", "en": "Baseline"},
    "toc": {"zh": "目录", "en": "Contents"},
    "exec_summary": {"zh": "一、执行摘要", "en": "1. Executive summary"},
    "posture": {"zh": "总体安全态势", "en": "Overall security posture"},
    "score": {"zh": "得分", "en": "Score"},
    "grade": {"zh": "等级", "en": "Grade"},
    "provisional": {"zh": "（暂定：评估覆盖率不足）", "en": "(provisional: coverage too low)"},
    "compliance": {"zh": "合规率", "en": "Compliance"},
    "coverage": {"zh": "评估覆盖率", "en": "Coverage"},
    "hosts": {"zh": "资产数", "en": "Hosts"},
    "open_findings": {"zh": "未处置风险", "en": "Open risks"},
    "waived_findings": {"zh": "已豁免", "en": "Waived"},
    "not_assessed_n": {"zh": "未能评估的规则项", "en": "Rule checks not assessed"},
    "how_computed": {"zh": "计算方法", "en": "How computed"},
    "summary_sentence": {
        "zh": "本次评估覆盖 {hosts} 台资产，发现未处置风险 {open} 项，其中很高 {l5} 项、高 {l4} 项、中 {l3} 项、低 {l2} 项、很低 {l1} 项；已豁免 {waived} 项；{na} 个规则项未能评估（不计为合规）。",
        "en": "{hosts} hosts assessed; {open} open risks: {l5} very high, {l4} high, {l3} medium, {l2} low, {l1} very "
              "low; {waived} waived; {na} rule checks could not be assessed (never counted as passed)."},
    "top_risks": {"zh": "需优先处置的风险", "en": "Risks to treat first"},
    "no_open": {"zh": "无未处置风险。", "en": "No open risk."},
    "risk_matrix": {"zh": "风险矩阵（可能性 × 影响）", "en": "Risk matrix (likelihood × impact)"},
    "likelihood": {"zh": "可能性 L", "en": "Likelihood L"},
    "impact": {"zh": "影响 F", "en": "Impact F"},
    "by_level": {"zh": "按风险等级", "en": "By risk level"},
    "by_severity": {"zh": "按漏洞严重程度", "en": "By severity"},
    "area_chart": {"zh": "各领域合规率", "en": "Compliance by area"},
    "trend": {"zh": "趋势（同一评估范围）", "en": "Trend (same scope)"},
    "areas": {"zh": "二、第7章各领域合规情况", "en": "2. Compliance by chapter-7 area"},
    "area": {"zh": "领域", "en": "Area"},
    "no_rules": {"zh": "本基线暂无规则", "en": "no rules in this baseline"},
    "assessed": {"zh": "已评估", "en": "Assessed"},
    "clauses": {"zh": "条款依据", "en": "Clauses"},
    "rule": {"zh": "规则", "en": "Rule"},
    "rules": {"zh": "规则与条款对照", "en": "Rules and clause references"},
    "rules_hidden": {"zh": "另有 {n} 条规则对本次资产均不适用（相应检查未运行或不在适用范围），完整列表见 report.json。",
                     "en": "{n} more rules did not apply to any host of this scan (their checks did not run or were out of scope); report.json lists them."},
    "tcm2024": {"zh": "2024规范第7章", "en": "2024 spec ch. 7"},
    "gbt22239": {"zh": "GB/T 22239 控制项", "en": "GB/T 22239 control"},
    "gbt39786": {"zh": "GB/T 39786 条目", "en": "GB/T 39786 item"},
    "na_dash": {"zh": "—", "en": "—"},
    "register": {"zh": "三、风险清单", "en": "3. Risk register"},
    "level": {"zh": "风险等级", "en": "Risk level"},
    "risk_value": {"zh": "风险值 R", "en": "Risk R"},
    "host": {"zh": "资产", "en": "Host"},
    "port": {"zh": "端口", "en": "Port"},
    "finding": {"zh": "风险项", "en": "Finding"},
    "status": {"zh": "状态", "en": "Status"},
    "open": {"zh": "未处置", "en": "open"},
    "severity": {"zh": "严重程度", "en": "Severity"},
    "host_detail": {"zh": "四、资产明细", "en": "4. Hosts in detail"},
    "role": {"zh": "角色", "en": "Role"},
    "zone": {"zh": "区域", "en": "Zone"},
    "class": {"zh": "类别", "en": "Class"},
    "owner": {"zh": "责任部门", "en": "Owner"},
    "services": {"zh": "开放服务", "en": "Services"},
    "host_grade": {"zh": "资产风险等级", "en": "Host grade"},
    "asset_value": {"zh": "资产价值 A", "en": "Asset value A"},
    "threat": {"zh": "威胁/暴露 T", "en": "Threat/exposure T"},
    "evidence": {"zh": "证据（来自被测主机，不可信内容已转义）", "en": "Evidence (from the host; untrusted, escaped)"},
    "remediation": {"zh": "整改建议", "en": "Remediation"},
    "truncated": {"zh": "已截断，共 {n} 字符；完整内容见 report.json", "en": "truncated, {n} characters; full value in report.json"},
    "no_findings_host": {"zh": "该资产无风险项。", "en": "No findings on this host."},
    "diff": {"zh": "五、与上次评估对比", "en": "5. Changes since the previous scan"},
    "previous": {"zh": "上次评估", "en": "Previous scan"},
    "no_previous": {"zh": "无同一范围的上次评估。", "en": "No earlier scan of the same scope."},
    "new": {"zh": "新增", "en": "New"},
    "fixed": {"zh": "已修复", "en": "Fixed"},
    "persisting": {"zh": "仍存在", "en": "Persisting"},
    "not_reassessed": {"zh": "未能复核（不视为已修复）", "en": "Not re-assessed (not counted as fixed)"},
    "waivers": {"zh": "六、已豁免（风险接受）", "en": "6. Waived (accepted risks)"},
    "waiver_owner": {"zh": "责任人", "en": "Owner"},
    "waiver_reason": {"zh": "理由", "en": "Reason"},
    "waiver_expires": {"zh": "到期", "en": "Expires"},
    "no_waivers": {"zh": "无豁免项。", "en": "No waived findings."},
    "gaps": {"zh": "七、未能评估的内容及原因", "en": "7. What was not assessed, and why"},
    "gaps_note": {"zh": "以下检查未能完成，相关规则记为“未评估”，不计入合规。",
                  "en": "These checks did not complete; the rules reading them are 'not assessed', never 'passed'."},
    "check": {"zh": "检查项", "en": "Check"},
    "reason": {"zh": "原因", "en": "Reason"},
    "detail": {"zh": "详情", "en": "Detail"},
    "nothing_missing": {"zh": "所有适用检查均已完成。", "en": "Every applicable check completed."},
    "method": {"zh": "八、评估方法", "en": "8. Method"},
    "tool": {"zh": "工具", "en": "Tool"},
    "check_versions": {"zh": "检查项版本", "en": "Check versions"},
    "targets": {"zh": "目标", "en": "Targets"},
    "exclude": {"zh": "排除（禁止探测）", "en": "Excluded (do not touch)"},
    "vantage": {"zh": "扫描位置（所在区域）", "en": "Vantage (scanner's zone)"},
    "times": {"zh": "开始 / 结束", "en": "Started / finished"},
    "risk_model": {"zh": "风险计算模型（GB/T 20984-2022 结构）", "en": "Risk model (GB/T 20984-2022 structure)"},
    "risk_model_text": {
        "zh": "资产价值 A、威胁/暴露 T、脆弱性严重程度 V 均取 1-5；可能性 L = √(T·V)，影响 F = √(A·V)，风险值 R = L·F ∈ [1, 25]。"
              "风险等级：1-5 很低，6-10 低，11-15 中，16-20 高，21-25 很高。A 取资产清单中的重要程度（或由角色推定），"
              "T 取资产所在区域与扫描位置两者暴露程度的较大者，V 取规则严重程度或证据中的 CVSS 分值。",
        "en": "Asset value A, threat/exposure T and vulnerability severity V are each 1-5; likelihood L = √(T·V), "
              "impact F = √(A·V), risk R = L·F in [1, 25]. Levels: 1-5 very low, 6-10 low, 11-15 medium, 16-20 high, "
              "21-25 very high. A is the inventory criticality (or derived from the role), T the larger of the "
              "exposure of the asset's zone and of the scanner's zone, V the rule severity or a CVSS score in the "
              "evidence."},
    "posture_text": {
        "zh": "总体得分 = 100 × 合规率 − 扣分（未处置风险按等级扣分：很高 10、高 5、中 2、低 0.5，上限 50），"
              "按得分定级 A≥90、B≥75、C≥60、D≥40、其余 E；存在很高风险时最高 D，存在高风险时最高 C；覆盖率低于 80% 时为暂定。",
        "en": "Score = 100 × compliance − penalty (open risks: very high 10, high 5, medium 2, low 0.5; capped at 50); "
              "grade A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E; an open very high risk caps the grade at D, a high one "
              "at C; provisional when coverage is below 80%."},
    "area_formula": {"zh": "{passed} 通过 / {assessed} 已评估 = {pct}；{na} 项未评估（不计为通过）",
                     "en": "{passed} passed / {assessed} assessed = {pct}; {na} not assessed (not counted as passed)"},
    "area_formula_none": {"zh": "无已评估项（{na} 项未评估）", "en": "nothing assessed ({na} not assessed)"},
    "posture_formula": {"zh": "得分 = 100 × 合规率 {c} − 扣分 {pen} = {score} → {grade}",
                        "en": "score = 100 × compliance {c} − penalty {pen} = {score} → {grade}"},
    "capped": {"zh": "（因存在等级 {lv} 的未处置风险，等级上限为 {grade}）", "en": " (capped at {grade}: open risk at level {lv})"},
    "events": {"zh": "扫描事件", "en": "Scan events"},
    "host_keys_tofu": {"zh": "首次使用即信任的主机密钥", "en": "Host keys trusted on first use"},
    "host_keys_tofu_text": {"zh": "扫描器登录这些主机前，没有预先固定的密钥可供核对：请向主机负责人核实以下指纹"
                                  "（ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub），或改用 tcmscan keys pin 与 --host-keys strict。",
                            "en": "No pinned key vouched for these hosts before the scanner logged in: confirm the "
                                  "fingerprints with their owners (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), or pin "
                                  "keys beforehand with tcmscan keys pin and scan with --host-keys strict."},
    "key_type": {"zh": "密钥类型", "en": "Key type"},
    "key_fingerprint": {"zh": "指纹", "en": "Fingerprint"},
    "footer": {"zh": "本报告由 tcmscan 自动生成；签名清单（manifest.json / manifest.sig）可离线验证报告完整性。",
               "en": "Generated by tcmscan; the signed manifest (manifest.json / manifest.sig) lets anyone verify "
                     "this report offline."},
    "digest": {"zh": "风险项摘要值（SHA-256）", "en": "Findings digest (SHA-256)"},
    "profile_note": {"zh": "基线说明", "en": "Baseline note"},
    "count": {"zh": "数量", "en": "Count"},
    "none": {"zh": "无", "en": "none"},
}

# Vocabulary words: keyed by the word (verdicts), sev_<severity>, st_<finding status>.
TEXT.update({v: labels_of("verdict", v) for v in VERDICTS})
TEXT.update({f"sev_{s}": labels_of("severity", s) for s in SEVERITIES})
TEXT.update({f"st_{s}": labels_of("finding_status", s) for s in FINDING_STATUSES})


def t(key: str, lang: str, **kw: Any) -> str:
    entry = TEXT.get(key)
    if entry is None:
        return key
    s = entry.get(lang) or entry["en"]
    return s.format(**kw) if kw else s


def pick(value: Any, lang: str) -> str:
    """A {zh, en} dict as the one language (falls back to the other; a plain string passes through)."""
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("en") or value.get("zh") or "")
    return "" if value is None else str(value)
