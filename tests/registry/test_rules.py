"""Evaluation rules are parsed, never eval()'d: a table of verdicts and of refusals."""

from __future__ import annotations

import pytest

from trainyard.registry import rules

GATE = "val_acc >= 0.95 and val_acc >= champion.val_acc - 0.002"


@pytest.mark.parametrize("rule, metrics, champion, passed, says", [
    (GATE, {"val_acc": 0.96}, None, True, "no champion yet, holds"),
    (GATE, {"val_acc": 0.969}, {"val_acc": 0.97}, True, "0.969 >= 0.968, holds"),
    (GATE, {"val_acc": 0.96}, {"val_acc": 0.97}, False, "0.96 >= 0.968, fails"),
    (GATE, {"val_acc": 0.90}, None, False, "0.9 >= 0.95, fails"),
    (GATE, {}, None, False, "the evaluation logged no val_acc, fails"),
    (GATE, {"val_acc": 0.96}, {"loss": 0.1}, False, "the champion logged no val_acc, fails"),
    ("loss < 0.2 or val_acc > 0.99", {"loss": 0.1, "val_acc": 0.5}, None, True, "0.1 < 0.2, holds"),
    ("0.9 < val_acc <= 1", {"val_acc": 1.0}, None, True, "0.9 < 1 <= 1, holds"),
    ("(val_acc - champion.val_acc) / 2 > -0.01", {"val_acc": 0.95}, {"val_acc": 0.96}, True, "holds"),
    ("val_loss <= champion.val_loss * 1.1", {"val_loss": 0.2}, {"val_loss": 0.1}, False, "0.2 <= 0.11, fails"),
])
def test_rule_verdicts_explain_every_comparison(rule, metrics, champion, passed, says):
    verdict = rules.evaluate(rules.parse(rule), metrics, champion)
    assert verdict.passed is passed
    assert says in verdict.reason


@pytest.mark.parametrize("rule, says", [
    ("__import__('os').system('rm -rf /') > 0", "is not allowed"),
    ("open('/etc/passwd').read() == 'x'", "is not allowed"),
    ("val_acc.__class__ > 0", "only champion.<metric> may use a dot"),
    ("val_acc", "is not a comparison"),
    ("not val_acc > 0.5", "is not a comparison"),
    ("val_acc > 'high'", "is not allowed"),
    ("val_acc is None", "comparisons are"),
    ("champion > 1", "name a metric of the champion"),
    ("val_acc >=", "cannot parse"),
    ("", "the rule is empty"),
])
def test_rules_that_are_not_plain_comparisons_are_refused(rule, says):
    with pytest.raises(rules.RuleError) as refused:
        rules.parse(rule)
    assert says in str(refused.value)
