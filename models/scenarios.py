"""The built-in scenarios, by name."""

from __future__ import annotations

from models.workload import CpuStep, Dist, IoStep, Scenario, Stage


def _const(ms: float) -> Dist:
    return Dist("constant", ms)


def _exp(ms: float) -> Dist:
    return Dist("exponential", ms)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "ecommerce",
            "An order: validate the cart, charge the card while reserving stock, "
            "then send the confirmation e-mail while rendering the receipt.",
            (
                Stage("validate", (CpuStep("validate cart", _const(1.0), "python"),)),
                Stage(
                    "payment and stock",
                    (
                        IoStep("charge card", _exp(40.0), 512, 256),
                        IoStep("reserve stock", _exp(10.0), 128, 64),
                    ),
                ),
                Stage(
                    "confirm",
                    (
                        IoStep("send e-mail", _exp(20.0), 4096, 64),
                        CpuStep("render receipt", _const(2.0), "python"),
                        CpuStep("sign receipt", _const(1.0), "native"),
                    ),
                ),
            ),
        ),
        Scenario(
            "io-bound",
            "One 50 ms wait per job and nothing else: the cost of waiting in each runtime.",
            (Stage("wait", (IoStep("call service", _const(50.0)),)),),
        ),
        Scenario(
            "cpu-bound",
            "5 ms of pure-Python CPU per job: what the GIL allows.",
            (Stage("compute", (CpuStep("compute", _const(5.0), "python"),)),),
        ),
        Scenario(
            "mixed",
            "A 20 ms wait, then 2 ms of Python CPU beside 2 ms of native (GIL-free) CPU.",
            (
                Stage("fetch", (IoStep("fetch", _exp(20.0), 256, 4096),)),
                Stage(
                    "process",
                    (
                        CpuStep("transform", _const(2.0), "python"),
                        CpuStep("hash", _const(2.0), "native"),
                    ),
                ),
            ),
        ),
    )
}
