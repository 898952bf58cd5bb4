#!/usr/bin/env python
"""Replay every fault-injection case of the test suite and print one table: fault, expected outcome,
outcome, verdict, with totals.

    python benchmarks/reliability/run_faults.py [--markdown docs/...]

A case is any test whose docstring starts with ``fault:`` and reads ``fault: <what is done> -> expected:
<what must happen>`` (bad inputs, killed writes, interrupted runs, hostile files). Each test checks its
expectation itself, including that no file was lost or half-written, so a passing test is a clean refusal or
a correct recovery, and a failing one is a defect: accepted silently, lost work or a confusing error.
"""
import argparse
import os.path as osp
import sys
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class FaultCases:
    """pytest plugin: keep only the ``fault:`` tests and record each one's outcome."""

    def __init__(self):
        self.docs = {}
        self.outcomes = {}
        self.seconds = {}

    @staticmethod
    def _doc(item):
        doc = getattr(getattr(item, 'function', None), '__doc__', None) or ''
        return ' '.join(doc.split())

    def pytest_collection_modifyitems(self, session, config, items):
        keep = [item for item in items if self._doc(item).startswith('fault:')]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
        for item in keep:
            self.docs[item.nodeid] = self._doc(item)

    def pytest_runtest_logreport(self, report):
        if report.when == 'call' or (report.when == 'setup' and report.outcome != 'passed'):
            self.outcomes[report.nodeid] = report.outcome
            self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration


def table(cases):
    rows = ['| # | fault (case) | expected | outcome | verdict |', '|---:|---|---|---|---|']
    counts = {'passed': 0, 'failed': 0, 'skipped': 0}
    controls = 0
    for i, (nodeid, doc) in enumerate(sorted(cases.docs.items()), 1):
        fault, _, expected = doc[len('fault:'):].partition('-> expected:')
        fault = fault.strip().rstrip('.')
        outcome = cases.outcomes.get(nodeid, 'not run')
        if fault.lower().startswith('none'):  # a control case: the good input next to the bad ones
            controls += 1
        else:
            counts[outcome] = counts.get(outcome, 0) + 1
        verdict = {'passed': 'handled', 'failed': 'DEFECT', 'skipped': 'not run here'}.get(outcome, outcome)
        test = nodeid.split('::')[0].replace('tests/', '')
        case = nodeid[nodeid.index('[') + 1:-1] if nodeid.endswith(']') else ''
        where = f'`{test}`' + (f', `{case}`' if case else '')
        rows.append(f'| {i} | {fault} ({where}) | {expected.strip()} | {outcome} | {verdict} |')
    total = sum(counts.values())
    summary = (f'{total} faults tried: {counts["passed"]} handled as expected (refused with a clear message or '
               f'recovered with nothing lost), {counts["failed"]} defects (accepted, lost or unclear), '
               f'{counts["skipped"]} not run on this machine; plus {controls} control cases (good input).')
    return '\n'.join(rows), summary, counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('paths', nargs='*', default=[osp.join(REPO, 'tests')], help='test folders / files')
    args = parser.parse_args(argv)
    cases = FaultCases()
    t0 = time.time()
    pytest.main(['-q', '-p', 'no:cacheprovider', '-m', 'not benchmark', '--rootdir', REPO, *args.paths],
                plugins=[cases])
    rows, summary, counts = table(cases)
    print()
    print(rows)
    print()
    print(f'{summary} ({time.time() - t0:.0f} s)')
    return 1 if counts['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
