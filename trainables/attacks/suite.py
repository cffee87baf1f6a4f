"""Attack a frozen defense with the whole suite and evaluate everything on the test split.

The evaluation protocol of docs/design.md: the obfuscator is frozen; every selected attacker
(`trainables.attacks.registry.selected`: the spec's lists, else its suite), each one `Attack`
of `trainables.attacks.base` whose hooks the suite calls, attacks it. The learned attackers
(leakage classifiers, reconstruction decoders) and a retrained utility model are trained on
released z of the
attacker data (`attacks.data`: the defense's own train split, the strong attacker who knows
the training data, or a share of it held out of defense training) and evaluated on the test
split. Defense randomness (noise, random pruning) is redrawn for every batch at attack time,
so no attacker sees noise-free or fixed-noise z (`trainables.attacks.releases`). Learned
attackers train to convergence with early stopping on the validation split and are
evaluated at their best validation epoch (`trainables.attacks.training`). Every other attacker
fits itself (the white-box inversion, `trainables.attacks.attackers.whitebox`, knows the
client and optimises images whose release matches z) and competes for `recon/<metric>` or
`privacy/leak_acc` like any learned one. The strongest attacker of each threat model (what it
knows, `Attack.threat`) is reported too: `privacy/leak_acc:<threat>`, `recon/ssim:<threat>`.

Beside the fresh attackers the suite evaluates, frozen, the method's own training-time
adversaries (`privacy/proxy_leak_acc`, `recon/proxy_ssim`): what the method would report
about itself. A defense whose proxy numbers are far below the fresh ones fools only its own
adversary. `privacy/leak_floor` is the leakage a perfect-utility release cannot avoid
(`trainables.attacks.floor`).

Every final metric is computed from per-example records (hits per test example, per-image
scores) and logged with its 95 % test-set bootstrap interval, `<key>:ci95_lo` and
`<key>:ci95_hi`; a max over attackers is the max in each resample (`trainables.bootstrap`).

`attacks.release_ratios`: a method with an inference-time pruning ratio (`at_release_ratio`)
is also attacked at each listed ratio R, frozen as trained (no defense retraining): a fresh
suite (same seed) is trained and evaluated on releases at R, and its metrics are added with
the suffix `:R<r>` (`privacy/leak_acc:R0.5`). The unsuffixed metrics stay those at the
trained ratio. A method without the knob and release_ratios set is an input error.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from trainables.attacks.attackers.leakage import ServerArch
from trainables.attacks.base import Attack, AttackContext, AttackData, LearnedAttack
from trainables.attacks.floor import leak_floor_hits
from trainables.attacks.registry import selected
from trainables.attacks.releases import DrawnOnce, ReleasedSplit
from trainables.attacks.training import Attacker, Stopwatch, train_attackers
from trainables.bootstrap import (
    Best,
    Difference,
    MajorityRate,
    Matthews,
    Mean,
    Statistic,
    bootstrap_intervals,
    point_values,
)
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.methods.base import Method
from trainables.metrics import ImageSimilarity
from trainables.schema import RECON_HIGHER_IS_BETTER, THREAT_METRICS, threat_key

# `time/attack/<part>`: seconds of each learned attacker's training steps and each other
# attacker's fit and test records (by its record name, `recon/whitebox`), of releasing
# batches, of the validation passes and of the test passes.
ATTACK_TIME_PREFIX = "time/attack/"
RETRAINED_UTILITY = "utility/retrained"

__all__ = ["AttackData", "AttackReport", "run_attack_suite"]


@dataclass
class AttackReport:
    metrics: dict[str, float]
    originals: torch.Tensor  # gallery images from the test split
    reconstructions: torch.Tensor  # the strongest reconstruction attacker's reconstructions of them
    decoder: str  # that attacker (by recon/ssim)
    # per learned attacker, its validation score after each attack epoch (accuracy, or minus the
    # MSE for decoders): logged as the curves `val/attack/<attacker>` (step = attack epoch)
    curves: dict[str, list[float]] = field(default_factory=dict)


def retrained_utility(ctx: AttackContext) -> Attacker:
    """The server architecture with the task head, trained by the suite's rule at the
    server-architecture classifier's rate, on its own weights unless `attacks.ema` says
    otherwise (averaged, it lost .008 task accuracy in 2 of 3 seeds:
    `trainables.attacks.training`)."""
    net = ServerArch.network(ctx.method.ctx.arch, ctx.classes[0])
    return Attacker(net, "task", ctx.cfg.lr or ServerArch.peak_lr, None, ctx.cfg.ema or 0.0, 1)


def build_attacks(ctx: AttackContext) -> tuple[dict[str, Attack], dict[str, Attacker]]:
    """Every selected attacker by record name (`leak/<name>`, `recon/<name>`), and the networks
    the suite trains: the learned attackers' and the retrained utility model's. Each is built
    from a seed of its own (the trial's seed and its name), so listing one more attacker
    changes no other attacker's initial weights."""

    def seeded(name: str, build):
        with torch.random.fork_rng(devices=[]):  # networks are built on the CPU, then moved
            torch.manual_seed(zlib.crc32(f"{ctx.seed}/{name}".encode()))
            return build()

    attacks: dict[str, Attack] = {cls.record_name(): seeded(cls.record_name(), lambda cls=cls: cls(ctx))
                                  for cls in selected(ctx.cfg).values()}
    learners = {name: attack.learner for name, attack in attacks.items() if attack.learner is not None}
    learners[RETRAINED_UTILITY] = seeded(RETRAINED_UTILITY, lambda: retrained_utility(ctx))
    return attacks, learners


@dataclass
class Evaluation:
    """Per test example records of one suite, from which every final metric and its
    bootstrap interval is computed (`trainables.bootstrap`)."""

    hits: dict[str, torch.Tensor]  # classifier -> correct or not per test example
    deployed: torch.Tensor  # the deployed model's task predictions
    task: torch.Tensor  # the task labels
    similarity: dict[str, ImageSimilarity]  # `recon/<attacker>` and the method's own `proxy/<decoder>`
    # `leak/<attacker>`, `recon/<attacker>` -> the attacker (its role and threat model)
    attackers: dict[str, type[Attack]] = field(default_factory=dict)


DEPLOYED = "utility/deployed"
PROXY_LEAK = "proxy/leak"


@torch.no_grad()
def evaluate(method: Method, utility: Attacker, test: ReleasedSplit) -> Evaluation:
    """The deployed model, the retrained utility model and the method's proxy adversary
    (per-example hits); the method's own decoders (`proxy/<name>`, per-image scores)."""
    utility.model.eval()
    image_shape = tuple(test.data.images.shape[1:])
    device = test.data.images.device
    hits: dict[str, list[torch.Tensor]] = {RETRAINED_UTILITY: []}
    proxy_decoders = method.proxy_decoders()
    similarity = {f"proxy/{name}": ImageSimilarity(image_shape, device, lpips=False) for name in proxy_decoders}
    deployed_preds, task_labels = [], []
    for z, targets in tqdm(test.batches(), total=test.num_batches(), desc="attack: test", leave=False, disable=None):
        deployed_preds.append(method.serve(z).argmax(1).cpu())
        task_labels.append(targets["task"].cpu())
        hits[RETRAINED_UTILITY].append((utility.model(z).argmax(1) == targets["task"]).cpu())
        proxy = method.proxy_leak(z)
        if proxy is not None:
            hits.setdefault(PROXY_LEAK, []).append((proxy.argmax(1) == targets["private"]).cpu())
        for name, decoder in proxy_decoders.items():
            similarity[f"proxy/{name}"].update(decoder(z).float().clamp(0, 1), targets["image"])
    deployed, task = torch.cat(deployed_preds), torch.cat(task_labels)
    per_example = {name: torch.cat(values) for name, values in hits.items()}
    per_example[DEPLOYED] = deployed == task
    return Evaluation(per_example, deployed, task, similarity)


def summarise(evaluation: Evaluation, data: AttackData) -> tuple[dict[str, Statistic], str]:
    """The metric keys of docs/metrics.md as statistics of the per-example records; returns them and
    the reconstruction attacker with the best SSIM."""
    task_classes, private_classes = data.classes
    hits = evaluation.hits
    statistics: dict[str, Statistic] = {
        "utility/acc": Mean(hits[DEPLOYED]),
        "utility/mcc": Matthews(evaluation.deployed, evaluation.task, task_classes),
        "utility/acc_retrained": Mean(hits[RETRAINED_UTILITY]),
    }
    leak = {name.removeprefix("leak/"): Mean(values) for name, values in hits.items() if name.startswith("leak/")}
    statistics.update({f"privacy/leak_acc/{name}": statistic for name, statistic in leak.items()})
    statistics["privacy/leak_acc"] = Best(list(leak.values()), higher_is_better=True)
    statistics["privacy/leak_chance"] = MajorityRate(data.test.private, private_classes)
    statistics["privacy/leak_floor"] = Mean(
        leak_floor_hits(data.attacker.task, data.attacker.private, data.test.task, data.test.private, *data.classes)
    )
    statistics["utility/chance"] = MajorityRate(data.test.task, task_classes)
    statistics["privacy/delta"] = Difference(statistics["utility/acc"], statistics["privacy/leak_acc"])
    if PROXY_LEAK in hits:
        statistics["privacy/proxy_leak_acc"] = Mean(hits[PROXY_LEAK])
    images = {name: similarity.statistics() for name, similarity in evaluation.similarity.items()}
    proxies = [values["ssim"] for name, values in images.items() if name.startswith("proxy/")]
    if proxies:
        statistics["recon/proxy_ssim"] = Best(proxies, higher_is_better=True)
    per_attacker = {name.removeprefix("recon/"): values for name, values in images.items() if name.startswith("recon/")}
    for metric, higher in RECON_HIGHER_IS_BETTER.items():
        values = {attacker: v[metric] for attacker, v in per_attacker.items() if metric in v}
        if not values:
            continue
        statistics.update({f"recon/{metric}/{attacker}": value for attacker, value in values.items()})
        statistics[f"recon/{metric}"] = Best(list(values.values()), higher_is_better=higher)
    statistics.update(threat_statistics(statistics, evaluation.attackers))
    ssim = point_values({attacker: values["ssim"] for attacker, values in per_attacker.items()})
    strongest = max(per_attacker, key=lambda attacker: ssim.get(attacker, float("-inf")))
    return statistics, strongest


def threat_statistics(statistics: dict[str, Statistic], attackers: dict[str, type[Attack]]) -> dict[str, Statistic]:
    """The strongest attacker of each threat model present: `privacy/leak_acc:<threat>` over
    the leakage attackers that assume it, `recon/ssim:<threat>` over the reconstruction ones."""
    grouped: dict[str, list[Statistic]] = {}
    for attacker in attackers.values():
        metric = THREAT_METRICS[attacker.role]
        statistic = statistics.get(f"{metric}/{attacker.name}")
        if statistic is not None:
            grouped.setdefault(threat_key(metric, attacker.threat), []).append(statistic)
    return {key: Best(values, higher_is_better=True) for key, values in grouped.items()}  # accuracy, SSIM: higher is stronger


def ratio_suffix(ratio: float) -> str:
    return f":R{ratio:g}"


def check_release_ratios(method_cls: type[Method], cfg: AttackConfig) -> None:
    """`attacks.release_ratios` is only valid for a method with an inference-time ratio."""
    if not cfg.release_ratios:
        return
    bad = [r for r in cfg.release_ratios if not 0 <= r < 1]
    if bad:
        raise InputError(f"attacks.release_ratios: pruning ratios must lie in [0, 1); got {bad}.")
    if not method_cls.supports_release_ratio():
        from trainables.methods import METHODS

        able = sorted(name for name, cls in METHODS.items() if cls.supports_release_ratio())
        raise InputError(
            f"attacks.release_ratios: method {method_cls.__name__} has no inference-time pruning ratio, "
            f"so it cannot be released at {cfg.release_ratios}; remove attacks.release_ratios (or set it "
            f"to null), or use a method that has one: {able}."
        )


def _attack_once(
    method: Method, data: AttackData, cfg: AttackConfig, seed: int, gallery: torch.Tensor
) -> tuple[dict[str, Statistic], dict[str, float], torch.Tensor, str, dict[str, list[float]]]:
    """Run every selected attacker on `method.release` as it is now; returns the final
    metrics as statistics, the attackers' bookkeeping metrics (`attack/...`), the strongest
    reconstruction attacker's reconstructions of the `gallery` images (the first test images),
    that attacker's name and the learners' validation curves."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    parts = method.release_parts()

    def released(split: TensorSplit) -> ReleasedSplit:
        return ReleasedSplit(parts, split, cfg.batch_size)

    device = data.test.images.device
    watch = Stopwatch(device)
    attacks, learners = build_attacks(AttackContext(method, cfg, data.classes, seed))
    for learner in learners.values():
        learner.net.to(device, memory_format=torch.channels_last)
    use_selection = cfg.selection == "val_best" and data.selection is not None
    with watch.timed("release"):  # the release's features are computed here, once per split
        train_split = released(data.attacker)
        selection_split = released(data.selection) if use_selection else None
        test_split = DrawnOnce(released(data.test))  # every attacker on the same draw of the test releases
    train_attackers(learners, train_split, cfg, generator, selection_split, watch)
    with watch.timed("test"):
        evaluation = evaluate(method, learners[RETRAINED_UTILITY], test_split)
    bookkeeping: dict[str, float] = {}
    learned = {name: attack for name, attack in attacks.items() if isinstance(attack, LearnedAttack)}
    for name, attack in attacks.items():
        with watch.timed("test" if attack.learner is not None else name):
            attack.fit(data, learned)
            records = attack.test_records(data, test_split)
        if records.hits is not None:
            evaluation.hits[name] = records.hits
        if records.similarity is not None:
            evaluation.similarity[name] = records.similarity
        evaluation.attackers[name] = type(attack)
        bookkeeping.update({f"attack/{key}": value for key, value in records.bookkeeping.items()})
    statistics, strongest = summarise(evaluation, data)
    for name, learner in learners.items():
        bookkeeping[f"attack/kept_epoch/{name}"] = float(learner.kept_epoch)
        bookkeeping[f"attack/epochs_run/{name}"] = float(learner.epochs_run)
        bookkeeping[f"attack/converged/{name}"] = float(learner.converged)
        bookkeeping[f"attack/restarts/{name}"] = float(learner.restarts)
    bookkeeping.update({f"{ATTACK_TIME_PREFIX}{part}": seconds for part, seconds in watch.seconds.items()})
    reconstructions = attacks[f"recon/{strongest}"].gallery(gallery)
    curves = {name: learner.val_scores for name, learner in learners.items()}
    return statistics, bookkeeping, reconstructions, strongest, curves


def run_attack_suite(method: Method, data: AttackData, cfg: AttackConfig, seed: int) -> AttackReport:
    """Freeze `method`, train the suite on `data.attacker` (to convergence on
    `data.selection`, see the module docstring), evaluate on `data.test`; again at each of
    `cfg.release_ratios` (suffixed metrics). Every final metric comes with its test-set
    bootstrap interval (`trainables.bootstrap`), the ratios' resampled jointly with the rest."""
    check_release_ratios(type(method), cfg)
    method.eval()
    method.requires_grad_(False)
    gallery = data.test.images_at(slice(0, cfg.gallery))
    statistics, metrics, reconstructions, decoder, curves = _attack_once(method, data, cfg, seed, gallery)
    for ratio in cfg.release_ratios or []:
        context = method.at_release_ratio(ratio)
        if context is None:
            raise InputError(f"attacks.release_ratios: {type(method).__name__} cannot be released at R={ratio}.")
        with context:
            at_ratio, bookkeeping, _, _, _ = _attack_once(method, data, cfg, seed, gallery)
        statistics.update({f"{key}{ratio_suffix(ratio)}": value for key, value in at_ratio.items()})
        metrics.update({f"{key}{ratio_suffix(ratio)}": value for key, value in bookkeeping.items()})
    metrics.update(point_values(statistics))
    metrics.update(bootstrap_intervals(statistics, cfg.bootstrap, seed))
    return AttackReport(metrics, gallery.contiguous().cpu(), reconstructions.detach().contiguous().cpu(), decoder, curves)
