//! [`GpuCollector`]: NVIDIA GPUs through NVML.
//!
//! NVML (`libnvidia-ml.so.1`) is loaded at run time by `nvml-wrapper`, so the
//! binary starts on machines without a driver: [`GpuCollector::new`] then
//! returns [`GpuError::Unavailable`], which the caller logs once, and
//! everything else keeps working.
//!
//! Series per device, labelled `gpu` (index), `uuid` and `name`:
//!
//! | name | unit |
//! |---|---|
//! | `gpu.utilization.gpu_percent`, `gpu.utilization.memory_percent` | % of the last sample period |
//! | `gpu.memory.used_bytes`, `gpu.memory.total_bytes` | bytes |
//! | `gpu.temperature_celsius` | °C |
//! | `gpu.power.usage_watts`, `gpu.power.limit_watts` | W (enforced limit) |
//! | `gpu.clock.sm_mhz`, `gpu.clock.memory_mhz` | MHz |
//! | `gpu.throttle.reasons` | the NVML clock-throttle bitmask, as a number |
//! | `gpu.throttle.active{reason}` | 0/1 per reason the device supports (and any set) |
//! | `gpu.ecc.corrected_errors`, `gpu.ecc.uncorrected_errors` | volatile counts (since the driver loaded) |
//! | `gpu.pcie.rx_bytes_per_s`, `gpu.pcie.tx_bytes_per_s` | bytes/s (NVML's 20 ms window) |
//! | `gpu.nvlink.rx_bytes_per_s`, `gpu.nvlink.tx_bytes_per_s` | bytes/s, all links (rate of NVML's data counters) |
//! | `gpu.xid{xid}` | the Xid code, one point per event seen since the last sample |
//! | `gpu.process.memory_bytes{pid}` | bytes used by each process on the device |
//!
//! A query a device does not support (or we may not make) is remembered
//! per device and not tried again; other failures skip one sample.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, EventSet, Nvml};
use nvml_wrapper_sys::bindings as sys;

use crate::sample::Sample;

/// Why GPU metrics are not available.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no NVIDIA driver: NVML (libnvidia-ml.so.1) cannot be used ({0}); GPU metrics are off")]
    Unavailable(String),
    #[error("NVML found no GPU; GPU metrics are off")]
    NoDevices,
    #[error("NVML: {0}")]
    Nvml(String),
}

/// NVML is initialised once per process and never shut down: devices and
/// event sets borrow it, and a collector lives as long as the process in
/// practice. A second collector shares the first one's instance.
static NVML: Mutex<Option<&'static Nvml>> = Mutex::new(None);

/// Raw NVML entry points for the one query `nvml-wrapper` cannot express:
/// field values with a scope (NVLink counters summed over all links need
/// `scopeId = UINT_MAX`; the wrapper always sends 0, i.e. link 0 only).
/// `dlopen` of the same library returns the already-loaded handle.
static RAW: Mutex<Option<&'static sys::NvmlLib>> = Mutex::new(None);

fn nvml() -> Result<&'static Nvml, GpuError> {
    let mut g = NVML.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = *g {
        return Ok(n);
    }
    let n = Nvml::init().map_err(|e| match e {
        NvmlError::LibloadingError(_)
        | NvmlError::DriverNotLoaded
        | NvmlError::LibraryNotFound
        | NvmlError::FailedToLoadSymbol(_)
        | NvmlError::NoPermission => GpuError::Unavailable(e.to_string()),
        other => GpuError::Nvml(other.to_string()),
    })?;
    let n: &'static Nvml = Box::leak(Box::new(n));
    *g = Some(n);
    Ok(n)
}

fn raw_lib() -> Option<&'static sys::NvmlLib> {
    let mut g = RAW.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        // SAFETY: loading the NVML library runs its initialisers, as
        // `Nvml::init` already did for the same file.
        if let Ok(lib) = unsafe { sys::NvmlLib::new("libnvidia-ml.so.1") } {
            *g = Some(Box::leak(Box::new(lib)));
        }
    }
    *g
}

/// The queries a device may not support; one bit each in `Gpu::skip`.
#[derive(Debug, Clone, Copy)]
enum Query {
    Utilization,
    Memory,
    Temperature,
    Power,
    PowerLimit,
    SmClock,
    MemClock,
    Throttle,
    EccCorrected,
    EccUncorrected,
    PcieRx,
    PcieTx,
    Nvlink,
    Processes,
    GraphicsProcesses,
}

/// Errors that will not go away by asking again.
fn is_permanent(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported
            | NvmlError::NoPermission
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::InvalidArg
    )
}

struct Gpu {
    device: Device<'static>,
    index: u32,
    uuid: String,
    name: String,
    /// Queries found unsupported (bits of `Query`).
    skip: u32,
    /// Throttle reasons this device can report.
    known_reasons: ThrottleReasons,
    /// The NVLink data counters (KiB) at the previous sample.
    nvlink_prev: Option<(Instant, u64, u64)>,
}

const REASONS: &[(ThrottleReasons, &str)] = &[
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
    ),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

impl Gpu {
    /// Runs `f` unless `q` is known to be unsupported; remembers a
    /// permanent failure.
    fn get<T>(
        &mut self,
        q: Query,
        f: impl FnOnce(&Device<'static>) -> Result<T, NvmlError>,
    ) -> Option<T> {
        let bit = 1u32 << (q as u32);
        if self.skip & bit != 0 {
            return None;
        }
        match f(&self.device) {
            Ok(v) => Some(v),
            Err(e) => {
                if is_permanent(&e) {
                    tracing::debug!(
                        "GPU {}: {q:?} not available ({e}); not asking again",
                        self.index
                    );
                    self.skip |= bit;
                }
                None
            }
        }
    }

    fn labels(&self) -> [(String, String); 3] {
        [
            ("gpu".into(), self.index.to_string()),
            ("uuid".into(), self.uuid.clone()),
            ("name".into(), self.name.clone()),
        ]
    }

    fn push(&self, out: &mut Vec<Sample>, name: &str, value: f64) {
        out.push(Sample {
            name: name.to_string(),
            labels: self.labels().to_vec(),
            value,
        });
    }

    fn push_with(&self, out: &mut Vec<Sample>, name: &str, extra: (&str, String), value: f64) {
        let mut labels = self.labels().to_vec();
        labels.push((extra.0.to_string(), extra.1));
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }

    fn collect(&mut self, out: &mut Vec<Sample>) {
        if let Some(u) = self.get(Query::Utilization, |d| d.utilization_rates()) {
            self.push(out, "gpu.utilization.gpu_percent", f64::from(u.gpu));
            self.push(out, "gpu.utilization.memory_percent", f64::from(u.memory));
        }
        if let Some(m) = self.get(Query::Memory, |d| d.memory_info()) {
            self.push(out, "gpu.memory.used_bytes", m.used as f64);
            self.push(out, "gpu.memory.total_bytes", m.total as f64);
        }
        if let Some(t) = self.get(Query::Temperature, |d| {
            d.temperature(TemperatureSensor::Gpu)
        }) {
            self.push(out, "gpu.temperature_celsius", f64::from(t));
        }
        // NVML reports milliwatts.
        if let Some(p) = self.get(Query::Power, |d| d.power_usage()) {
            self.push(out, "gpu.power.usage_watts", f64::from(p) / 1000.0);
        }
        if let Some(p) = self.get(Query::PowerLimit, |d| d.enforced_power_limit()) {
            self.push(out, "gpu.power.limit_watts", f64::from(p) / 1000.0);
        }
        if let Some(c) = self.get(Query::SmClock, |d| d.clock_info(Clock::SM)) {
            self.push(out, "gpu.clock.sm_mhz", f64::from(c));
        }
        if let Some(c) = self.get(Query::MemClock, |d| d.clock_info(Clock::Memory)) {
            self.push(out, "gpu.clock.memory_mhz", f64::from(c));
        }
        if let Some(r) = self.get(Query::Throttle, |d| d.current_throttle_reasons()) {
            self.push(out, "gpu.throttle.reasons", r.bits() as f64);
            for (flag, name) in REASONS {
                if self.known_reasons.contains(*flag) || r.contains(*flag) {
                    let v = if r.contains(*flag) { 1.0 } else { 0.0 };
                    self.push_with(out, "gpu.throttle.active", ("reason", name.to_string()), v);
                }
            }
        }
        if let Some(n) = self.get(Query::EccCorrected, |d| {
            d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
        }) {
            self.push(out, "gpu.ecc.corrected_errors", n as f64);
        }
        if let Some(n) = self.get(Query::EccUncorrected, |d| {
            d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
        }) {
            self.push(out, "gpu.ecc.uncorrected_errors", n as f64);
        }
        // NVML reports KB/s.
        if let Some(v) = self.get(Query::PcieRx, |d| {
            d.pcie_throughput(PcieUtilCounter::Receive)
        }) {
            self.push(out, "gpu.pcie.rx_bytes_per_s", f64::from(v) * 1024.0);
        }
        if let Some(v) = self.get(Query::PcieTx, |d| d.pcie_throughput(PcieUtilCounter::Send)) {
            self.push(out, "gpu.pcie.tx_bytes_per_s", f64::from(v) * 1024.0);
        }
        self.nvlink(out);
        for (pid, bytes) in self.process_memory() {
            self.push_with(
                out,
                "gpu.process.memory_bytes",
                ("pid", pid.to_string()),
                bytes as f64,
            );
        }
    }

    /// NVLink data counters (KiB, all links), turned into rates.
    fn nvlink(&mut self, out: &mut Vec<Sample>) {
        let Some(counters) = self.get(Query::Nvlink, nvlink_counters) else {
            return;
        };
        let now = Instant::now();
        let (tx, rx) = counters;
        if let Some((t0, tx0, rx0)) = self.nvlink_prev {
            let dt = now.duration_since(t0).as_secs_f64();
            if dt > 0.0 && tx >= tx0 && rx >= rx0 {
                self.push(
                    out,
                    "gpu.nvlink.tx_bytes_per_s",
                    (tx - tx0) as f64 * 1024.0 / dt,
                );
                self.push(
                    out,
                    "gpu.nvlink.rx_bytes_per_s",
                    (rx - rx0) as f64 * 1024.0 / dt,
                );
            }
        }
        self.nvlink_prev = Some((now, tx, rx));
    }

    /// GPU memory per process (compute and graphics contexts; a process with
    /// both is listed once with their sum).
    fn process_memory(&mut self) -> Vec<(u32, u64)> {
        let mut by_pid: HashMap<u32, u64> = HashMap::new();
        let compute = self.get(Query::Processes, |d| d.running_compute_processes());
        let graphics = self.get(Query::GraphicsProcesses, |d| d.running_graphics_processes());
        for p in compute.into_iter().chain(graphics).flatten() {
            let bytes = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => b,
                UsedGpuMemory::Unavailable => 0,
            };
            *by_pid.entry(p.pid).or_default() += bytes;
        }
        let mut v: Vec<_> = by_pid.into_iter().collect();
        v.sort_unstable();
        v
    }
}

/// `(tx, rx)` NVLink data counters in KiB over all links of `d`.
fn nvlink_counters(d: &Device<'static>) -> Result<(u64, u64), NvmlError> {
    let lib = raw_lib().ok_or(NvmlError::FunctionNotFound)?;
    let get = lib
        .nvmlDeviceGetFieldValues
        .as_ref()
        .map_err(|_| NvmlError::FunctionNotFound)?;
    let mut vals: [sys::nvmlFieldValue_t; 2] =
        // SAFETY: nvmlFieldValue_t is plain C data; all-zero is valid.
        unsafe { std::mem::zeroed() };
    vals[0].fieldId = sys::field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX;
    vals[1].fieldId = sys::field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX;
    for v in &mut vals {
        // UINT_MAX: summed over all links (nvml.h, NVLink throughput fields).
        v.scopeId = u32::MAX;
    }
    // SAFETY: the handle comes from a live Device of the same NVML library,
    // and `vals` is a valid array of the length we pass.
    let rc = unsafe { get(d.handle(), vals.len() as i32, vals.as_mut_ptr()) };
    if rc != sys::nvmlReturn_enum_NVML_SUCCESS {
        return Err(if rc == sys::nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED {
            NvmlError::NotSupported
        } else {
            NvmlError::Unknown
        });
    }
    let mut out = [0u64; 2];
    for (o, v) in out.iter_mut().zip(&vals) {
        if v.nvmlReturn != sys::nvmlReturn_enum_NVML_SUCCESS {
            // A device without NVLink answers NOT_SUPPORTED per field.
            return Err(NvmlError::NotSupported);
        }
        // SAFETY: the union member read is the one `valueType` names.
        *o = unsafe {
            match v.valueType {
                sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG => v.value.ullVal,
                sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG => v.value.ulVal,
                sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT => u64::from(v.value.uiVal),
                _ => return Err(NvmlError::NotSupported),
            }
        };
    }
    Ok((out[0], out[1]))
}

/// Collects GPU metrics; see the module docs.
pub struct GpuCollector {
    gpus: Vec<Gpu>,
    /// Xid events of every device that supports them; `None` when none does.
    events: Option<EventSet<'static>>,
}

impl GpuCollector {
    /// Loads NVML and finds the GPUs. Without a driver or a GPU this fails
    /// with an error worth one log line.
    pub fn new() -> Result<GpuCollector, GpuError> {
        let nvml = nvml()?;
        let count = nvml
            .device_count()
            .map_err(|e| GpuError::Nvml(e.to_string()))?;
        if count == 0 {
            return Err(GpuError::NoDevices);
        }
        let mut gpus = Vec::new();
        for i in 0..count {
            let device = match nvml.device_by_index(i) {
                Ok(d) => d,
                Err(e) => {
                    // A GPU that fell off the bus must not hide the others.
                    tracing::warn!("GPU {i}: cannot open it ({e}); skipping it");
                    continue;
                }
            };
            let uuid = device.uuid().unwrap_or_default();
            let name = device.name().unwrap_or_default();
            let known_reasons = device
                .supported_throttle_reasons()
                .unwrap_or(ThrottleReasons::empty());
            gpus.push(Gpu {
                device,
                index: i,
                uuid,
                name,
                skip: 0,
                known_reasons,
                nvlink_prev: None,
            });
        }
        if gpus.is_empty() {
            return Err(GpuError::NoDevices);
        }
        let events = register_xid_events(nvml, &gpus);
        Ok(GpuCollector { gpus, events })
    }

    /// How many GPUs are collected.
    pub fn device_count(&self) -> usize {
        self.gpus.len()
    }

    /// Every series readable now.
    pub fn sample(&mut self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(self.gpus.len() * 32);
        self.collect_into(&mut out);
        out
    }

    /// Appends every series readable now to `out`.
    pub fn collect_into(&mut self, out: &mut Vec<Sample>) {
        for g in &mut self.gpus {
            g.collect(out);
        }
        self.xid_events(out);
    }

    /// Drains pending Xid events without waiting.
    fn xid_events(&mut self, out: &mut Vec<Sample>) {
        let Some(set) = &self.events else { return };
        // Bounded: a storm of events must not hold up the sample.
        for _ in 0..64 {
            let ev = match set.wait(0) {
                Ok(ev) => ev,
                // Timeout: nothing pending. Anything else: try next time.
                Err(_) => break,
            };
            if !ev.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
                continue;
            }
            let code = match ev.event_data {
                Some(nvml_wrapper::enums::event::XidError::Value(v)) => v,
                _ => 0,
            };
            let uuid = ev.device.uuid().unwrap_or_default();
            let gpu = self.gpus.iter().find(|g| g.uuid == uuid);
            let mut labels = match gpu {
                Some(g) => g.labels().to_vec(),
                None => vec![("uuid".to_string(), uuid)],
            };
            labels.push(("xid".into(), code.to_string()));
            out.push(Sample {
                name: "gpu.xid".into(),
                labels,
                value: code as f64,
            });
        }
    }

    /// `(pid, GPU index, bytes)` for every process using a GPU now, so a
    /// supervisor can attribute GPUs to its process tree.
    pub fn processes(&self) -> Vec<(u32, u32, u64)> {
        let mut out = Vec::new();
        for g in &self.gpus {
            // `&self`: ask without recording failures (sample() does that).
            let supported = |q: Query| g.skip & (1 << (q as u32)) == 0;
            let mut by_pid: HashMap<u32, u64> = HashMap::new();
            let mut add =
                |r: Result<Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>, NvmlError>| {
                    for p in r.into_iter().flatten() {
                        let b = match p.used_gpu_memory {
                            UsedGpuMemory::Used(b) => b,
                            UsedGpuMemory::Unavailable => 0,
                        };
                        *by_pid.entry(p.pid).or_default() += b;
                    }
                };
            if supported(Query::Processes) {
                add(g.device.running_compute_processes());
            }
            if supported(Query::GraphicsProcesses) {
                add(g.device.running_graphics_processes());
            }
            let mut v: Vec<_> = by_pid.into_iter().map(|(p, b)| (p, g.index, b)).collect();
            v.sort_unstable();
            out.extend(v);
        }
        out
    }
}

/// One event set for the Xid events of every device that supports them.
fn register_xid_events(nvml: &'static Nvml, gpus: &[Gpu]) -> Option<EventSet<'static>> {
    let mut set = nvml.create_event_set().ok()?;
    let mut any = false;
    for g in gpus {
        let supported = g
            .device
            .supported_event_types()
            .is_ok_and(|t| t.contains(EventTypes::CRITICAL_XID_ERROR));
        if !supported {
            continue;
        }
        match g
            .device
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
        {
            Ok(s) => {
                set = s;
                any = true;
            }
            Err(e) => {
                // The set is consumed on failure; Xid events are then off
                // (they need root on some drivers).
                tracing::info!("GPU {}: Xid events unavailable ({e})", g.index);
                return None;
            }
        }
    }
    any.then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without the driver (CI, this repository's development
    /// machines) the collector must fail cleanly with a readable reason; on
    /// a GPU machine it must find devices and report their memory.
    #[test]
    fn without_a_driver_the_error_is_clear_and_with_one_devices_report() {
        match GpuCollector::new() {
            Err(GpuError::Unavailable(why)) => {
                let msg = GpuError::Unavailable(why).to_string();
                assert!(msg.contains("no NVIDIA driver"), "{msg}");
                // Asking again is just as clean (nothing half-initialised).
                assert!(GpuCollector::new().is_err());
            }
            Err(GpuError::NoDevices) => {}
            Err(GpuError::Nvml(e)) => panic!("unexpected NVML failure: {e}"),
            Ok(mut c) => {
                assert!(c.device_count() > 0);
                let s = c.sample();
                let total = s
                    .iter()
                    .find(|s| s.name == "gpu.memory.total_bytes")
                    .expect("memory total");
                assert!(total.value > 0.0);
                assert!(total.label("uuid").is_some_and(|u| !u.is_empty()));
                let _ = c.processes();
            }
        }
    }
}
