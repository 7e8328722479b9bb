//! The node's one wasmtime [`Engine`] and the epoch ticker that drives it.
//!
//! Every container of the process runs in this engine (ARCHITECTURE D6). Its configuration is
//! part of the compile cache key: a `.cwasm` only loads into an engine configured the same way,
//! so knobs that change code generation (`memory_reservation`, ...) are deliberately left at
//! their defaults and only the pooling allocator's sizes follow [`EngineConfig`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::Error;

/// How the engine is sized. One node agent process has one of these.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The most containers (component instances) running at once; sizes the pooling
    /// allocator, which reserves its address space up front.
    pub max_instances: u32,
    /// The largest linear memory any container may have, in bytes: the node's cap for
    /// containers without `limits.memory`, and the pool's slot size.
    pub max_memory_bytes: u64,
    /// How often the epoch advances: the scheduling slice of a guest that never blocks, and
    /// the worst-case delay of stopping a spinning guest.
    pub epoch_tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Pool slots per container. A Rust `wasm32-wasip2` command is several core instances (its
/// main module, the preview-1 adapter, shim modules) sharing one or two memories and a few
/// tables; the headroom is for other toolchains. Unused slots cost address space, not memory.
const CORE_INSTANCES_PER_CONTAINER: u32 = 12;
const MEMORIES_PER_CONTAINER: u32 = 3;
const TABLES_PER_CONTAINER: u32 = 6;

/// The process's wasmtime engine plus its epoch ticker. Cheap to clone; the ticker stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    config: EngineConfig,
    _ticker: Arc<Ticker>,
}

impl WasmEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: EngineConfig) -> Result<WasmEngine, Error> {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances.max(1);
        let max_memory = usize::try_from(config.max_memory_bytes)
            .unwrap_or(usize::MAX)
            .min(4 << 30);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_CONTAINER))
            .total_memories(n.saturating_mul(MEMORIES_PER_CONTAINER))
            .total_tables(n.saturating_mul(TABLES_PER_CONTAINER))
            .total_stacks(n)
            .max_memories_per_module(1)
            .max_memory_size(max_memory);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true)
            .wasm_gc(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| Error::Engine(e.to_string()))?;
        let ticker = Ticker::start(&engine, config.epoch_tick)?;
        Ok(WasmEngine {
            engine,
            config,
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}

/// Advances the engine's epoch every tick so `epoch_deadline_callback` runs in every guest.
///
/// A plain thread rather than a tokio task: the engine outlives any one tokio runtime (tests
/// start one per test, the agent may build its own), and a ticker that died with a runtime
/// would leave every spinning guest unstoppable. It holds only a weak reference, so it never
/// keeps the engine alive.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine, tick: Duration) -> Result<Ticker, Error> {
        let weak = engine.weak();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| Error::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // At most one tick; never from the ticker thread itself (it holds no strong ref).
            let _ = thread.join();
        }
    }
}
