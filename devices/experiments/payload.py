"""Results as plain data: what the results API answers and the dashboard's tables and CSV hold."""

from __future__ import annotations

from typing import Any

from devices.experiments.results import Results


def results_payload(results: Results) -> dict[str, Any]:
    srm = results.srm
    return {
        "experiment": results.experiment.pk,
        "state": results.experiment.state,
        "filters": results.filters,
        "verdict": results.sentences,
        "srm": None
        if srm is None
        else {
            "observed": list(srm.observed),
            "expected": list(srm.expected),
            "p_value": srm.p_value,
            "mismatch": srm.mismatch,
        },
        "ineligible_devices": results.ineligible,
        "more_devices_per_arm": results.more_devices_per_arm,
        "power": results.power_sentence,
        "arms": [
            {
                "arm": arm.arm.pk,
                "name": arm.arm.name,
                "version": arm.arm.version.number,
                "control": arm.arm.is_control,
                "devices": arm.devices,
                "stopped_reason": arm.arm.stop_reason if arm.arm.stopped_at else "",
                "metrics": [
                    {
                        "metric": name,
                        "units": own.units,
                        "value": own.value,
                        "low": own.low,
                        "high": own.high,
                        "quantiles": own.quantiles,
                        "versus_control": None
                        if arm.arm.is_control
                        else {
                            "diff": own.comparison.diff,
                            "diff_low": own.comparison.diff_low,
                            "diff_high": own.comparison.diff_high,
                            "relative": own.comparison.relative,
                            "relative_low": own.comparison.relative_low,
                            "relative_high": own.comparison.relative_high,
                            "p_value": own.comparison.p_value,
                            "p_adjusted": own.p_adjusted,
                            "significant": own.significant,
                            "sequential": results.experiment.sequential,
                        },
                    }
                    for name, own in arm.metrics.items()
                ],
            }
            for arm in results.arms
        ],
        "series": results.series,
    }
