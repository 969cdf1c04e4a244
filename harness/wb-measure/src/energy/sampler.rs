//! Background sampling of energy counters and the idle + window measurement.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    Accumulator, DomainInfo, EnergyCounter, EnergyError, EnergyMeasureError, EnergyMeasurement,
};

/// Longest period between two counter readings, whatever the wrap period.
pub const MAX_SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// Shortest period between two counter readings.
const MIN_SAMPLE_PERIOD: Duration = Duration::from_millis(1);

/// Power (watts per domain) assumed when deriving the shortest possible wrap
/// period from `max_energy_range_uj`. Far above any single RAPL domain, so
/// the derived period is a safe lower bound.
pub const ASSUMED_MAX_POWER_W: f64 = 1000.0;

/// Shortest time (seconds) in which any of `domains` could wrap at
/// [`ASSUMED_MAX_POWER_W`]. Infinite for no domains.
pub fn min_wrap_period_s(domains: &[DomainInfo]) -> f64 {
    domains
        .iter()
        .map(|d| d.max_energy_range_uj as f64 / 1e6 / ASSUMED_MAX_POWER_W)
        .fold(f64::INFINITY, f64::min)
}

/// The sampling period actually used for `domains` when `requested` is
/// asked for: at most `requested`, at most [`MAX_SAMPLE_PERIOD`], at most a
/// tenth of [`min_wrap_period_s`], and at least 1 ms.
pub fn safe_period(domains: &[DomainInfo], requested: Duration) -> Duration {
    let tenth_wrap = min_wrap_period_s(domains) / 10.0;
    let mut p = requested.min(MAX_SAMPLE_PERIOD);
    if tenth_wrap.is_finite() {
        p = p.min(Duration::from_secs_f64(tenth_wrap.max(0.0)));
    }
    p.max(MIN_SAMPLE_PERIOD)
}

/// Energy accumulated by a [`Sampler`] between its start and its stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReading {
    /// The domains, in counter order.
    pub domains: Vec<DomainInfo>,
    /// Accumulated microjoules per domain.
    pub energy_uj: Vec<u64>,
    /// Wraps per domain.
    pub wraps: Vec<u64>,
    /// Seconds between the first and the last counter reading.
    pub elapsed_s: f64,
    /// Number of counter readings, first and last included.
    pub reads: u64,
    /// Largest gap between two consecutive readings (seconds).
    pub max_gap_s: f64,
    /// Whether `max_gap_s` reached the shortest possible wrap period
    /// ([`min_wrap_period_s`]), so a double wrap could have gone unseen.
    pub possible_missed_wrap: bool,
}

impl EnergyReading {
    /// Accumulated joules of domain `i`.
    pub fn joules(&self, i: usize) -> f64 {
        self.energy_uj[i] as f64 / 1e6
    }
}

/// State after the first reading of a window.
struct Started {
    domains: Vec<DomainInfo>,
    acc: Accumulator,
    t0: Instant,
    period: Duration,
}

fn begin<C: EnergyCounter + ?Sized>(
    counter: &mut C,
    requested: Duration,
) -> Result<Started, EnergyError> {
    let domains = counter.domains();
    let period = safe_period(&domains, requested);
    let first = counter.read_uj()?;
    let t0 = Instant::now();
    let acc = Accumulator::new(&domains, &first)?;
    Ok(Started {
        domains,
        acc,
        t0,
        period,
    })
}

fn run_loop<C: EnergyCounter + ?Sized>(
    counter: &mut C,
    st: Started,
    stop: Receiver<()>,
) -> Result<EnergyReading, EnergyError> {
    let Started {
        domains,
        mut acc,
        t0,
        period,
    } = st;
    let mut last_t = t0;
    let mut max_gap = Duration::ZERO;
    loop {
        let done = match stop.recv_timeout(period) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        let vals = counter.read_uj()?;
        let now = Instant::now();
        max_gap = max_gap.max(now - last_t);
        last_t = now;
        acc.update(&vals)?;
        if done {
            break;
        }
    }
    let max_gap_s = max_gap.as_secs_f64();
    Ok(EnergyReading {
        energy_uj: acc.total_uj().to_vec(),
        wraps: acc.wraps().to_vec(),
        elapsed_s: (last_t - t0).as_secs_f64(),
        reads: acc.reads(),
        max_gap_s,
        possible_missed_wrap: max_gap_s >= min_wrap_period_s(&domains),
        domains,
    })
}

type SamplerOutput<C> = (C, Result<EnergyReading, EnergyError>);

/// A background thread reading an owned counter periodically.
///
/// The first reading is taken by [`Sampler::start`] on the calling thread,
/// the last by [`Sampler::stop`] (the thread wakes immediately on stop), so
/// the window is bracketed by readings.
pub struct Sampler<C> {
    stop_tx: Sender<()>,
    handle: JoinHandle<SamplerOutput<C>>,
    period: Duration,
}

impl<C: EnergyCounter + Send + 'static> Sampler<C> {
    /// Take the first reading and start sampling every
    /// [`safe_period`]`(domains, period)`.
    pub fn start(mut counter: C, period: Duration) -> Result<Self, EnergyError> {
        let st = begin(&mut counter, period)?;
        let period = st.period;
        let (stop_tx, rx) = channel();
        let handle = thread::Builder::new()
            .name("wb-energy-sampler".into())
            .spawn(move || {
                let r = run_loop(&mut counter, st, rx);
                (counter, r)
            })
            .map_err(|e| EnergyError::Io {
                path: "<sampler thread>".into(),
                source: e,
            })?;
        Ok(Self {
            stop_tx,
            handle,
            period,
        })
    }

    /// The sampling period in use.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Take the last reading and return the accumulated energy.
    pub fn stop(self) -> Result<EnergyReading, EnergyError> {
        self.finish().1
    }

    /// Like [`Sampler::stop`], also handing the counter back (`None` only if
    /// the sampler thread panicked).
    pub fn finish(self) -> (Option<C>, Result<EnergyReading, EnergyError>) {
        let _ = self.stop_tx.send(());
        match self.handle.join() {
            Ok((c, r)) => (Some(c), r),
            Err(_) => (None, Err(EnergyError::SamplerPanicked)),
        }
    }
}

/// Run `body` while a scoped sampler reads `counter`; returns the reading and
/// `body`'s value.
fn scoped_window<C, R>(
    counter: &mut C,
    body: impl FnOnce() -> R,
) -> Result<(Result<EnergyReading, EnergyError>, R), EnergyError>
where
    C: EnergyCounter + Send + ?Sized,
{
    let st = begin(counter, MAX_SAMPLE_PERIOD)?;
    Ok(thread::scope(|s| {
        // The sender lives inside the scope closure: if `body` panics it is
        // dropped while unwinding, the sampler sees the disconnect and ends,
        // and the scope's join cannot deadlock.
        let (tx, rx) = channel();
        let h = s.spawn(move || run_loop(counter, st, rx));
        let r = body();
        let _ = tx.send(());
        let reading = h.join().unwrap_or(Err(EnergyError::SamplerPanicked));
        (reading, r)
    }))
}

/// Durations of [`measure_energy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyConfig {
    /// Idle measurement before the window (seconds, > 0).
    pub idle_s: f64,
    /// Minimum window length (seconds, > 0). RAPL updates about every
    /// millisecond; a window of at least 1 s keeps quantization below 0.1 %.
    pub min_window_s: f64,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            idle_s: 2.0,
            min_window_s: 1.0,
        }
    }
}

impl EnergyConfig {
    /// A fast preset for tests (0.2 s idle, 0.2 s window); not for results.
    pub fn quick() -> Self {
        Self {
            idle_s: 0.2,
            min_window_s: 0.2,
        }
    }

    /// Check that both durations are positive and finite.
    pub fn validate(&self) -> Result<(), EnergyError> {
        for (name, v) in [("idle_s", self.idle_s), ("min_window_s", self.min_window_s)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(EnergyError::InvalidConfig(format!(
                    "{name} = {v}; must be a positive number of seconds"
                )));
            }
        }
        Ok(())
    }
}

/// Measure the energy of a workload.
///
/// 1. Idle: sleep `cfg.idle_s` while sampling, giving idle power per domain.
/// 2. Window: call `f` repeatedly (each call returns the number of images it
///    processed) until at least `cfg.min_window_s` has passed, sampling the
///    counters in the background.
/// 3. Combine with [`EnergyMeasurement::from_readings`].
///
/// The first error of `f` stops the window and is returned as
/// [`EnergyMeasureError::Workload`].
pub fn measure_energy<C, F, E>(
    counter: &mut C,
    cfg: &EnergyConfig,
    mut f: F,
) -> Result<EnergyMeasurement, EnergyMeasureError<E>>
where
    C: EnergyCounter + Send + ?Sized,
    F: FnMut() -> Result<usize, E>,
{
    cfg.validate()?;
    let idle_dur = Duration::from_secs_f64(cfg.idle_s);
    let (idle, ()) = scoped_window(counter, || thread::sleep(idle_dur))?;
    let idle = idle?;

    let min_window = Duration::from_secs_f64(cfg.min_window_s);
    let (window, work) = scoped_window(counter, || -> Result<usize, E> {
        let t0 = Instant::now();
        let mut images = 0usize;
        loop {
            images += f()?;
            if t0.elapsed() >= min_window {
                return Ok(images);
            }
        }
    })?;
    let images = work.map_err(EnergyMeasureError::Workload)?;
    let window = window?;
    Ok(EnergyMeasurement::from_readings(&idle, &window, images)?)
}
