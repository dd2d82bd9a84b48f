"""Each experiment's figure, rendered without root from a quick run stored under
tests/data/runs (made on the development machine), checked by its structure: the kind of
chart, how many bars or lines, axis labels with units, the prediction drawn, the verdict
in the title.  Pixels are never compared."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.patches import Rectangle

from wirelab.report import analysis, figures
from wirelab.report.results import read_run
from wirelab.run import catalog
from wirelab.spec import Bars, Rounds, Schedule, Sweep, Timeline, Waterfall

RUNS = Path(__file__).parents[1] / "data" / "runs"
KIND = {"tcp_handshake_one_rtt": Sweep, "tls_handshake_rtts": Bars,
        "iw10_vs_iw1_initcwnd_sweep": Rounds, "slow_start_1MB_transfer": Rounds,
        "keepalive_connection_slow_start_after_idle": Bars, "nagle_delayed_ack_stall": Bars,
        "connection_pooling_latency": Bars, "http2_multiplexing_vs_http1": Bars,
        "url_journey_rtt_budget": Waterfall, "syn_retransmission_schedule": Schedule,
        "rto_backoff_partition": Schedule, "keepalive_dead_peer_detection": Schedule,
        "loss_recovery_fast_retransmit_vs_rto": Bars,
        "reachability_tools_ping_vs_tcp_refused_vs_drop": Bars, "cwnd_response_to_loss": Bars,
        "flow_control_rwnd_bdp_and_buffer_sysctls": Bars,
        "client_ephemeral_port_exhaustion_tw_reuse": Bars, "accept_backlog_overflow": Bars,
        "server_side_time_wait_accumulation": Bars, "socket_memory_per_connection": Bars,
        "time_wait_duration_and_fin_timeout": Bars, "connection_capacity_fd_and_4tuple": Bars,
        "bgp_backbone_leak_localpref": Timeline, "retry_storm_metastable_congestion": Timeline,
        "memcached_reflection_and_edge_filtering": Timeline,
        "openflow_controller_failure_fail_mode": Timeline, "openflow_reactive_flow_setup": Bars,
        "openflow_load_balancer_spread": Bars,
        "anycast_resolver_withdrawal_and_hijack": Timeline}


def stored(exp_id: str):
    run_dir = sorted((RUNS / exp_id).iterdir())[-1]
    return read_run(run_dir), catalog.load(exp_id)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    figures._plt().close("all")


def drawn(exp_id: str):
    run, exp = stored(exp_id)
    fig = figures.render(run, exp)
    return fig, run, exp


def bars(ax) -> list[Rectangle]:
    """The bars drawn (a 0-RTT handshake is a bar of height 0; legend stand-ins have no
    width)."""
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]


def prediction_marks(ax) -> int:
    return sum(len(c.get_segments()) for c in ax.collections
               if hasattr(c, "get_segments") and c.get_linewidth()[0] >= 2.5)


def test_every_experiment_declares_the_picture_its_claim_needs():
    assert {e.id for e in catalog.all_experiments()} == set(KIND)
    for exp in catalog.all_experiments():
        spec = getattr(exp.module, "FIGURE", None)
        assert isinstance(spec, KIND[exp.id]), exp.id
        assert spec.question.endswith("?"), exp.id           # a question, in plain words
        # A categorical x (a mode, a TLS version) never gets the numeric sweep.
        categorical = any(p.choices for p in exp.params.values() if p.name == exp.X)
        assert not (categorical and isinstance(spec, Sweep)), exp.id


@pytest.mark.parametrize("exp_id", sorted(KIND))
def test_title_has_the_question_and_verdict_and_the_footer_the_run(exp_id):
    fig, run, exp = drawn(exp_id)
    verdict = analysis.verdict(analysis.of_run(exp, run))
    title = fig._suptitle.get_text()
    assert exp.module.FIGURE.question.split()[0] in title
    assert f"verdict: {verdict.upper()}" in title
    footer = " ".join(t.get_text() for t in fig.texts)
    assert run.dir.name in footer and "kernel 6.1" in footer and "trials per point" in footer
    w, h = fig.get_size_inches()
    assert (w * fig.dpi, h * fig.dpi) == (1920, 1080)


@pytest.mark.parametrize("exp_id, groups, hues, hatched", [
    ("tls_handshake_rtts", 5, 1, 0),
    ("connection_pooling_latency", 3, 2, 0),
    ("http2_multiplexing_vs_http1", 3, 3, 3),          # the lossy runs: shown, not judged
    ("keepalive_connection_slow_start_after_idle", 3, 4, 4),   # after idle: reported
    ("nagle_delayed_ack_stall", 5, 2, 0),
    ("loss_recovery_fast_retransmit_vs_rto", 3, 1, 0),
    ("reachability_tools_ping_vs_tcp_refused_vs_drop", 6, 1, 0),
    ("cwnd_response_to_loss", 3, 1, 0),
    ("flow_control_rwnd_bdp_and_buffer_sysctls", 4, 1, 0),     # the paused reader: a note
])
def test_categorical_claims_are_grouped_bars_with_predictions(exp_id, groups, hues, hatched):
    fig, run, exp = drawn(exp_id)
    ax = fig.axes[0]
    drawn_bars = bars(ax)
    assert len(drawn_bars) == groups * hues
    assert len([b for b in drawn_bars if b.get_hatch()]) == hatched
    assert prediction_marks(ax) == groups * hues            # a mark across every bar
    assert len(ax.get_xticklabels()) == groups
    assert ax.get_ylabel().endswith("]")                    # a unit
    assert any(t.get_text() == "prediction" for t in ax.get_legend().get_texts())


def test_tls_counts_round_trips_on_whole_number_ticks():
    fig, _, _ = drawn("tls_handshake_rtts")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "network [round trips]"
    assert all(float(t).is_integer() for t in ax.get_yticks())
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "TLS 1.2 full"


def test_keepalive_marks_the_rto_it_read():
    fig, run, _ = drawn("keepalive_connection_slow_start_after_idle")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "RTO 260 ms (TCP_INFO)" in text


def test_nagle_shows_one_stalled_request_packet_by_packet():
    fig, run, _ = drawn("nagle_delayed_ack_stall")
    assert len(fig.axes) == 2
    ladder = fig.axes[1]
    data = json.loads(sorted(run.dir.glob("raw/point*/timeline.json"))[-1].read_text())
    arrows = [t for t in ladder.texts if getattr(t, "arrow_patch", None) is not None
              and t.get_text() == ""]
    assert len(arrows) == len(data["packets"]) + len(data["gaps"])
    labels = [t.get_text() for t in ladder.texts]
    assert labels.count("100 B") >= 2 and "ACK" in labels
    assert any(x.startswith("delayed ACK") for x in labels)
    assert ladder.get_ylabel() == "time [ms]" and ladder.get_ylim()[0] > ladder.get_ylim()[1]


@pytest.mark.parametrize("exp_id, hues, traces", [("iw10_vs_iw1_initcwnd_sweep", 3, 3),
                                                   ("slow_start_1MB_transfer", 1, 1)])
def test_rounds_are_the_formulas_steps_with_a_cwnd_panel(exp_id, hues, traces):
    fig, run, _ = drawn(exp_id)
    rounds, cwnd = fig.axes[0], fig.axes[1]
    steps = [ln for ln in rounds.get_lines() if ln.get_linestyle() == "--"]
    assert len(steps) == hues and all(len(ln.get_xdata()) > 100 for ln in steps)
    assert rounds.get_xlabel() == "transfer size [kB]"
    assert rounds.get_ylabel() == "transfer time [round trips]"
    assert len([ln for ln in cwnd.get_lines() if ln.get_linestyle() == "-"]) == traces
    assert cwnd.get_yscale() == "log" and cwnd.get_ylabel() == "congestion window [segments]"


def test_url_journey_is_a_waterfall_with_the_models_boundaries():
    fig, run, exp = drawn("url_journey_rtt_budget")
    ax = fig.axes[0]
    pts = analysis.of_run(exp, run)
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert len(rows) == len(pts) == 8 and "rtt 50 ms, dns=warm, tls=1.3" in rows
    phases = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"DNS", "TCP", "TLS", "request to first byte", "model boundary"} <= phases
    assert prediction_marks(ax) == 8 * 5                    # every phase boundary
    assert ax.get_xlabel().startswith("time since the request began [ms]")
    assert any(t.get_text().strip().endswith("RTT") for t in ax.texts)


def test_the_handshake_sweep_keeps_predictions_dashed_and_a_pass_band():
    fig, _, _ = drawn("tcp_handshake_one_rtt")
    top, bottom = fig.axes[0], fig.axes[1]
    assert len([ln for ln in top.get_lines() if ln.get_linestyle() == "--"]) == 2
    assert bottom.collections and bottom.get_ylabel() == "excess [ms]"
    assert top.get_xscale() == "log"                        # 1 to 50 ms: decades
    labels = [t.get_text() for t in top.get_xticklabels()]
    assert "1" in labels and "10" in labels


@pytest.mark.parametrize("exp_id", ["syn_retransmission_schedule", "rto_backoff_partition",
                                    "keepalive_dead_peer_detection"])
def test_a_schedule_draws_every_trials_events_against_the_kernels(exp_id):
    fig, run, exp = drawn(exp_id)
    ax = fig.axes[0]
    pts = analysis.of_run(exp, run)
    assert len(ax.get_yticklabels()) == len(pts)
    trials = [json.loads(line) for f in sorted(run.dir.glob("raw/point*/schedule.jsonl"))
              for line in f.read_text().splitlines()]
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    ends = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
    assert len(dots) == len(trials) and len(ends) == sum(t.get("end") is not None for t in trials)
    assert sum(len(ln.get_xdata()) for ln in dots) == sum(len(t["events"]) for t in trials)
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"kernel's schedule", "predicted give-up", exp.module.FIGURE.end} <= legend
    assert ax.get_xlabel() == "time since the first transmission [s]"


def test_cwnd_loss_shows_each_congestion_controls_window_over_time():
    fig, run, _ = drawn("cwnd_response_to_loss")
    trace = fig.axes[1]
    solid = [ln for ln in trace.get_lines() if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in solid] == ["cc=reno", "cc=cubic", "cc=bbr"]
    assert min(min(ln.get_ydata()) for ln in solid) == 1          # the timeout's one segment
    assert trace.get_xlabel() == "time [s]" and "ssthresh" in trace.get_ylabel()


def test_flow_control_states_the_zero_window_probes_in_a_note():
    fig, _, _ = drawn("flow_control_rwnd_bdp_and_buffer_sysctls")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "goodput [Mbit/s]"
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "1st probe" in notes and "RTO after the window shut" in notes


@pytest.mark.parametrize("fmt", figures.FORMATS)
def test_formats_for_slides(tmp_path, fmt):
    run, exp = stored("tls_handshake_rtts")
    out = figures.save(figures.render(run, exp), tmp_path / f"f.{fmt}")
    assert out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="one of"):
        figures.save(figures.render(run, exp), tmp_path / "f.bmp")


def test_a_swept_sysctl_gets_its_own_figure_with_its_values_along_x(tmp_path):
    """keepalive's quick grid sweeps tcp_slow_start_after_idle: 1 and 0 along x, the
    metrics its effect shows in (reuse first, reported: hollow), a line per idle gap."""
    from wirelab.report import plot
    run, exp = stored("keepalive_connection_slow_start_after_idle")
    pts = analysis.of_run(exp, run)
    (param,) = figures.varied_sysctls(exp, pts)
    assert param.sysctl == "net.ipv4.tcp_slow_start_after_idle"
    fig = figures.render_sysctl(run, exp, param)
    reuse, warm = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in reuse.get_xticklabels()] == ["1", "0"]
    assert reuse.get_xlabel() == "net.ipv4.tcp_slow_start_after_idle"
    assert reuse.get_ylabel() == "reuse [ms]" and warm.get_ylabel() == "warm [ms]"
    labels = [t.get_text() for t in reuse.get_legend().get_texts()]
    assert labels == ["prediction", "idle 0.05 s (reported)", "idle 1 s (reported)"]
    assert "verdict: MATCH" in fig._suptitle.get_text()
    assert any("guides: set it to 0" in t.get_text() for t in fig.texts)
    # restarted after 1 s idle with the sysctl at 1, not at 0: the effect is in the picture
    dots = [ln for ln in reuse.get_lines() if ln.get_marker() == "o"]
    assert len(dots) == 2 and all(len(ln.get_xdata()) == 2 for ln in dots)
    # not written into the stored run by the test: copy it first
    import shutil
    copy = tmp_path / run.dir.name
    shutil.copytree(run.dir, copy)
    from wirelab.report.results import read_run as _read
    made = plot.sysctl_plots(_read(copy), exp)
    assert [p.name for p in made] == ["plot-tcp_slow_start_after_idle.png"]


def test_the_summary_says_what_guides_advise_and_what_each_value_did():
    from wirelab.report.summary import summary_markdown
    run, exp = stored("keepalive_connection_slow_start_after_idle")
    text = summary_markdown(exp, run.manifest, analysis.of_run(exp, run))
    section = text.split("## Sysctls", 1)[1].split("## What Linux does")[0]
    assert ("`net.ipv4.tcp_slow_start_after_idle` (parameter slow_start_after_idle): tuning "
            "guides say set it to 0 on servers with long-lived connections") in section
    assert "  - 1: reuse_ms " in section and "  - 0: reuse_ms " in section


@pytest.mark.parametrize("exp_id", ["openflow_controller_failure_fail_mode",
                                    "memcached_reflection_and_edge_filtering"])
def test_a_timeline_shows_points_that_agree(exp_id):
    """Where two points measure the same (secure and standalone both answer every echo),
    the earlier point's line is the wider one, so the later lies inside it and both
    colours show; a line at 0 is drawn whole, above the axis' bottom."""
    fig, run, exp = drawn(exp_id)
    first = fig.axes[0]
    widths: dict = {}
    for line in first.get_lines():
        if line.get_label().startswith("_child") or line.get_linestyle() == "-":
            widths.setdefault(line.get_color(), line.get_linewidth())
    ordered = [widths[c] for c in figures.PALETTE if c in widths]
    assert len(ordered) == len(run.manifest["points"]) >= 2
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)
    assert all(ax.get_ylim()[0] < 0 for ax in fig.axes if ax.get_lines())
