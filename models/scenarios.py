"""The built-in scenarios, by name."""

from __future__ import annotations

from models.workload import CpuStep, Dist, IoStep, Lock, Scenario, Stage


def _const(ms: float) -> Dist:
    return Dist("constant", ms)


def _exp(ms: float) -> Dist:
    return Dist("exponential", ms)


def _lognormal(p50_ms: float, p99_ms: float) -> Dist:
    return Dist("lognormal", p50_ms=p50_ms, p99_ms=p99_ms)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "ecommerce",
            "An order: validate the cart; charge the card (a gateway with a long tail, a 500 ms "
            "timeout and one retry) while reserving stock under the product's lock; then render "
            "and sign the receipt while the confirmation e-mail goes out in the background.",
            (
                Stage("validate", (CpuStep("validate cart", _const(1.0), "json"),)),
                Stage(
                    "payment and stock",
                    (
                        IoStep(
                            "charge card",
                            _lognormal(40.0, 400.0),
                            512,
                            256,
                            fail_rate=0.02,
                            retries=1,
                            backoff_ms=50.0,
                            timeout_ms=500.0,
                        ),
                        IoStep(
                            "reserve stock", _exp(5.0), 128, 64, lock=Lock(100, 1.0), via="postgres"
                        ),
                    ),
                ),
                Stage(
                    "confirm",
                    (
                        IoStep("send e-mail", _exp(20.0), 4096, 64, background=True),
                        CpuStep("render receipt", _const(2.0), "json"),
                        CpuStep("sign receipt", _const(1.0), "native"),
                    ),
                ),
            ),
        ),
        Scenario(
            "email",
            "A sign-up: check the form, create the account, then render the welcome page while "
            "the welcome e-mail goes to the background (a mail relay that fails 1% of the time, "
            "retried twice).",
            (
                Stage("check", (CpuStep("check form", _const(0.5), "python"),)),
                Stage("create", (IoStep("create account", _exp(5.0), 256, 64),)),
                Stage(
                    "welcome",
                    (
                        CpuStep("render page", _const(0.5), "python"),
                        IoStep(
                            "send e-mail",
                            _lognormal(50.0, 500.0),
                            8192,
                            64,
                            fail_rate=0.01,
                            retries=2,
                            backoff_ms=100.0,
                            background=True,
                        ),
                    ),
                ),
            ),
        ),
        Scenario(
            "payment",
            "A payment: a slow gateway (p50 200 ms, p99 3 s) that fails 5% of the time, cut at "
            "1 s and retried twice with backoff, then the result recorded.",
            (
                Stage(
                    "charge",
                    (
                        IoStep(
                            "charge card",
                            _lognormal(200.0, 3000.0),
                            512,
                            256,
                            fail_rate=0.05,
                            retries=2,
                            backoff_ms=100.0,
                            timeout_ms=1000.0,
                        ),
                    ),
                ),
                Stage("record", (IoStep("record payment", _exp(5.0), 256, 64),)),
            ),
        ),
        Scenario(
            "report",
            "A report: fetch 64 KiB of data, aggregate it in Python while compressing it "
            "natively (20 ms each), store the result.",
            (
                Stage("fetch", (IoStep("fetch data", _exp(30.0), 256, 65536),)),
                Stage(
                    "build",
                    (
                        CpuStep("aggregate", _const(20.0), "python"),
                        CpuStep("compress", _const(20.0), "native"),
                    ),
                ),
                Stage("store", (IoStep("store report", _exp(10.0), 65536, 64),)),
            ),
        ),
        Scenario(
            "api-sync",
            "A sync with external APIs: eight calls at once (30 ms each on average, cut at "
            "200 ms and retried once), then their answers merged.",
            (
                Stage(
                    "fan out",
                    tuple(
                        IoStep(
                            f"call api {i}",
                            _exp(30.0),
                            256,
                            1024,
                            retries=1,
                            timeout_ms=200.0,
                        )
                        for i in range(1, 9)
                    ),
                ),
                Stage("fan in", (CpuStep("merge", _const(2.0), "python"),)),
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
