// java: a chain of CompletableFutures per job; a blocking try per I/O thread (no virtual threads).
//
// One point of the workload, run as docs/protocol.md says: job i's draws from its own SplitMix64
// stream, the same CPU kernels and checksums as the Python models, the latency service's wire
// protocol. Java 17 as a service written with CompletableFuture runs it:
//
// - A job is a chain of CompletableFutures; a stage's steps start at once and the stage waits
//   for them with CompletableFuture.allOf. A future cannot stop a blocking try, so a stage waits
//   for all its steps even once one has failed, as the threads model does.
// - An I/O try is a blocking call on the I/O executor, a cached thread pool: Java 17 has no
//   virtual threads, so each blocking try in flight holds a platform thread of its own. Over
//   the service the call is a round trip on a java.net.Socket from a pool (a
//   ConcurrentLinkedDeque, filled before the clock starts), with setSoTimeout for the try's
//   timeout; a timed-out connection is closed, as its answer may still come. Without a service
//   the try parks its thread for the drawn time (LockSupport.parkNanos: Java 17's Thread.sleep
//   rounds to whole milliseconds), so the two transports differ only by the network.
// - CPU steps run on a fixed pool of one thread per core: no GIL, so they run in parallel.
// - No thread waits for a user's turn, a job's due time or a retry's backoff: those are
//   futures completed by CompletableFuture.delayedExecutor. Users are futures too: a user's
//   next job starts in the thread that ended its last one.
// - A product's stock is under its own ReentrantLock, held by the one thread that runs the
//   locked step: the step's blocking tries, and the pauses between them, run in that thread.
// - Background steps are futures the program tracks and waits for before it writes its result.
//
// Java 17's JDK has no JSON: the small hand-written reader and writer at the end serve the
// spec, the result and the json kernel's round trip of each order. The draws' log, exp, cos
// and pow are Math's, not StrictMath's: see `M` below for why. 64-bit words are longs: products
// and sums mod 2^64 are a long's own overflow, and checksums are written unsigned.

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.StringJoiner;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/** Runs one point of the workload from SPEC.json and writes its result (docs/protocol.md). */
public final class Model {
    // How a job or a background step ended: the last field of a record.
    static final int OK = 0, FAILED = 1, TIMED_OUT = 2, LOST = 3;
    static final long STOCK_START = 1_000_000_000_000L; // every product's stock at the start
    static final int KEPT_ERRORS = 5; // the first unexpected errors say what went wrong
    static final double MIN_DRAIN_S = 5.0; // the least time an open load may take to drain
    static final long MOST_DELAY_US = 0x40FF_FFFFL; // the wire's longest delay (18 minutes)
    static final long NO_DEADLINE = Long.MIN_VALUE; // a try without a timeout
    static final long GOLDEN = 0x9E37_79B9_7F4A_7C15L; // SplitMix64's increment
    static final long LCG_A = 6364136223846793005L; // Knuth's MMIX LCG: the python kernel
    static final long LCG_C = 1442695040888963407L;
    static final double Z99 = 2.3263478740408408; // the standard normal's 99th percentile
    static final byte[] NATIVE_BLOCK = nativeBlock(); // bytes 0..255, 64 times: 16 KiB
    static final int ORDER_ITEMS = 4;
    static final int RECEIPT_BYTES = receipt(0, "c00000@example.com",
            String.join("\n", Collections.nCopies(ORDER_ITEMS, line(1, "SKU-00000", 0.0))),
            0.0, "EUR").length();

    /** A duration distribution in milliseconds (models.workload.Dist). */
    record Dist(String kind, double meanMs, double lowMs, double highMs, double p50Ms, double p99Ms) {}

    enum Kind { PYTHON, NATIVE, JSON }

    /** A step of the scenario; `popularity` (the Zipf weights' running sums) null: no lock. */
    record Step(boolean io, boolean background, double[] popularity, Dist dist, int requestBytes,
            int responseBytes, double failRate, int retries, double backoffMs, Double timeoutMs,
            Kind kind) {}

    /** One drawn try of an I/O step. */
    record Attempt(double seconds, boolean fails, double backoffS) {}

    /** One drawn step of a job; `stage` and `step` are its place in the scenario. */
    sealed interface Action permits Wait, Compute {
        int job();
        int stage();
        int step();
        int product(); // -1: no lock
        boolean background();
    }

    /** A drawn I/O step: its tries, in order, until one succeeds; `timeoutS` null: none. */
    record Wait(int job, int stage, int step, Attempt[] attempts, Double timeoutS,
            int requestBytes, int responseBytes, int product, boolean background) implements Action {}

    /** A drawn piece of CPU work. */
    record Compute(int job, int stage, int step, Kind kind, long units, long seed, int product,
            boolean background) implements Action {}

    record Job(int index, Action[][] stages) {}

    record Ended(long checksum, int outcome) {}

    /** A job that ran; `takenS` NaN in a closed load. */
    record Finished(int index, double submittedS, double startedS, double endedS, long checksum,
            int outcome, double takenS) {}

    /** A background step that ended. */
    record Handed(Action action, double handedS, double endedS, long checksum, int outcome) {}

    /** A pooled connection to the latency service, with a buffer its answers are read into. */
    record Connection(Socket socket, InputStream in, OutputStream out, byte[] buffer) {}

    /** A try drawn to fail: the service answered with an error. */
    static final class StepFailed extends RuntimeException {
        StepFailed() {
            super("the service answered with an error", null, false, false);
        }
    }

    /** A try of the sleep transport that its timeout cut short. */
    static final class TimedOut extends RuntimeException {
        TimedOut() {
            super("no answer before the timeout", null, false, false);
        }
    }

    /** Steps of one stage failed: the job's outcome is the worst of theirs. */
    static final class StageFailed extends RuntimeException {
        final int outcome;

        StageFailed(int outcome) {
            super("a step failed", null, false, false);
            this.outcome = outcome;
        }
    }

    // The point, as SPEC.json gives it.
    private final Step[][] scenario;
    private final double[] rates; // kernel units per millisecond, by Kind
    private final long seed;
    private final int concurrency;
    private final double warmupS;
    private final double durationS;
    private final Double rampS;
    private final Integer maxJobs;
    private final InetSocketAddress service;
    private final double[] arrivals; // null: closed load
    private final Path out;

    // What the futures of the run share.
    private final ExecutorService ioPool = Executors.newCachedThreadPool(daemons("io"));
    private final ExecutorService cpuPool =
            Executors.newFixedThreadPool(Runtime.getRuntime().availableProcessors(), daemons("cpu"));
    private final ConcurrentLinkedDeque<Connection> idle = new ConcurrentLinkedDeque<>();
    private final ReentrantLock[] locks; // one per product
    private final long[] stock; // each product's stock, guarded by its lock
    private final AtomicInteger indices = new AtomicInteger(); // the next job to take
    private final Set<CompletableFuture<Void>> handing = ConcurrentHashMap.newKeySet();
    private double startedS;
    private double stopS;

    // What the run records, appended to by any thread.
    private final Queue<Finished> records = new ConcurrentLinkedQueue<>();
    private final Queue<Handed> background = new ConcurrentLinkedQueue<>();
    private final Queue<Integer> handedOff = new ConcurrentLinkedQueue<>(); // each step's job
    private final Queue<Integer> retried = new ConcurrentLinkedQueue<>(); // each retry's job
    private final Queue<Integer> sold = new ConcurrentLinkedQueue<>(); // each sale's product
    private final Queue<Integer> discarded = new ConcurrentLinkedQueue<>();
    private final List<String> errors = new ArrayList<>(); // guarded by itself

    /** Runs the point of SPEC.json; an error ends the program with status 1 and one line. */
    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: java Model SPEC.json");
            System.exit(2);
        }
        try {
            new Model(Json.object(Json.parse(Files.readString(Path.of(args[0]))))).run();
        } catch (Throwable error) {
            Throwable cause = unwrap(error);
            System.err.println("java model: " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
            System.exit(1);
        }
        System.exit(0);
    }

    Model(Map<String, Object> spec) {
        if (Json.integer(spec, "protocol") != 1) {
            throw new IllegalArgumentException("protocol " + spec.get("protocol")
                    + " is not supported; this program speaks protocol 1 (docs/protocol.md)");
        }
        Map<String, Object> calibration = Json.object(spec.get("calibration"));
        rates = new double[] {
            Json.number(calibration, "python_iterations_per_ms"),
            Json.number(calibration, "native_blocks_per_ms"),
            Json.number(calibration, "json_orders_per_ms"),
        };
        List<Object> stages = Json.list(Json.object(spec.get("scenario")).get("stages"));
        scenario = new Step[stages.size()][];
        int products = 0;
        for (int s = 0; s < scenario.length; s++) {
            List<Object> steps = Json.list(Json.object(stages.get(s)).get("steps"));
            scenario[s] = new Step[steps.size()];
            for (int k = 0; k < steps.size(); k++) {
                Map<String, Object> step = Json.object(steps.get(k));
                scenario[s][k] = step(step);
                if (scenario[s][k].kind() != null && Double.isNaN(rates[scenario[s][k].kind().ordinal()])) {
                    throw new IllegalArgumentException("the calibration has no rate for the "
                            + step.get("kind") + " kernel (a run from before it); calibrate again");
                }
                if (step.get("lock") != null) {
                    products = Math.max(products, (int) Json.integer(Json.object(step.get("lock")), "products"));
                }
            }
        }
        seed = Json.integer(spec, "seed"); // the seed's low 64 bits, as Python's seed & MASK
        concurrency = (int) Json.integer(spec, "concurrency");
        warmupS = Json.number(spec, "warmup_s");
        durationS = Json.number(spec, "duration_s");
        rampS = spec.get("ramp_s") == null ? null : Json.number(spec, "ramp_s");
        maxJobs = spec.get("max_jobs") == null ? null : (int) Json.integer(spec, "max_jobs");
        List<Object> address = spec.get("service") == null ? null : Json.list(spec.get("service"));
        service = address == null ? null
                : new InetSocketAddress((String) address.get(0), (int) (long) (Long) address.get(1));
        List<Object> due = spec.get("arrivals") == null ? null : Json.list(spec.get("arrivals"));
        arrivals = due == null ? null : due.stream().mapToDouble(Json::number).toArray();
        out = Path.of((String) spec.get("out"));
        locks = new ReentrantLock[products];
        stock = new long[products];
        for (int p = 0; p < products; p++) {
            locks[p] = new ReentrantLock();
            stock[p] = STOCK_START;
        }
    }

    /** Opens the connections, runs the window's jobs, waits for background work, writes the result. */
    void run() throws IOException {
        try {
            int connections = service == null ? 0 : concurrency * maxIoWidth();
            for (int c = 0; c < connections; c++) {
                idle.offerLast(connect());
            }
            startUsers();
            while (!handing.isEmpty()) { // the background work must end before the point does
                CompletableFuture.allOf(handing.toArray(new CompletableFuture<?>[0])).join();
            }
            writeResult();
        } finally {
            for (Connection connection; (connection = idle.pollLast()) != null; ) {
                connection.socket().close();
            }
            ioPool.shutdownNow();
            cpuPool.shutdownNow();
        }
    }

    /** Starts the clock, then every user (a future each), and waits until all have stopped. */
    private void startUsers() {
        startedS = now();
        stopS = startedS + warmupS + durationS;
        System.out.println("start " + startedS);
        System.out.flush();
        CompletableFuture<?>[] users = new CompletableFuture<?>[concurrency];
        for (int user = 0; user < concurrency; user++) {
            users[user] = serve(user);
        }
        CompletableFuture.allOf(users).join();
    }

    /** User `user`: joins at its turn, then runs jobs back to back (open load: each when it is
     * due) until the window closes; the future completes when the user stops. */
    private CompletableFuture<Void> serve(int user) {
        CompletableFuture<Void> stopped = new CompletableFuture<>();
        after(userStartS(user) - now()).thenRun(() -> serveNext(stopped));
        return stopped;
    }

    /** Takes the user's next jobs, until one runs on in other threads or none is left. */
    private void serveNext(CompletableFuture<Void> stopped) {
        try {
            while (true) {
                int index = indices.getAndIncrement();
                double takenS = now();
                Job job = job(index, takenS);
                if (job == null) {
                    stopped.complete(null);
                    return;
                }
                CompletableFuture<Void> ran = after(waitS(index)).thenCompose(ignored -> {
                    double started = now();
                    return runJob(job).thenAccept(ended -> records.add(new Finished(index,
                            dueS(index, started), started, now(), ended.checksum(), ended.outcome(),
                            arrivals == null ? Double.NaN : takenS)));
                });
                // A job that ended at once (every step in the background) loops here rather
                // than nesting one callback in another.
                if (!ran.isDone()) {
                    ran.whenComplete((ignored, error) -> {
                        if (error != null) {
                            stopped.completeExceptionally(error);
                        } else {
                            serveNext(stopped);
                        }
                    });
                    return;
                }
                ran.join();
            }
        } catch (Throwable error) {
            stopped.completeExceptionally(error);
        }
    }

    /** Job `index`, or null (recorded as discarded) once the window has closed: models.load.Window.job. */
    private Job job(int index, double nowS) {
        if ((maxJobs != null && index >= maxJobs)
                || (arrivals == null && nowS >= stopS)
                || (arrivals != null && (index >= arrivals.length
                        || startedS + arrivals[index] >= stopS
                        || nowS >= stopS + Math.max(durationS, MIN_DRAIN_S)))) {
            discarded.add(index);
            return null;
        }
        return drawJob(index);
    }

    /** When user `user` submits its first job: users join one by one over the ramp (closed load). */
    private double userStartS(int user) {
        if (arrivals != null) {
            return startedS;
        }
        double ramp = rampS == null ? warmupS : rampS;
        return startedS + ramp * user / concurrency;
    }

    /** When job `index` is submitted: when it is due (open load), or as it starts (closed). */
    private double dueS(int index, double nowS) {
        return arrivals == null ? nowS : startedS + arrivals[index];
    }

    /** How long until job `index` is due (open load; 0 when closed or overdue). */
    private double waitS(int index) {
        return arrivals == null ? 0.0 : Math.max(0.0, dueS(index, 0.0) - now());
    }

    /** Runs the stages in order; a stage that fails ends the job. */
    private CompletableFuture<Ended> runJob(Job job) {
        return runStages(job, 0, new long[job.stages().length]).handle((checksum, error) ->
                error == null ? new Ended(checksum, OK) : new Ended(0, outcome(error)));
    }

    private CompletableFuture<Long> runStages(Job job, int from, long[] results) {
        if (from == results.length) {
            return CompletableFuture.completedFuture(combine(results));
        }
        return runStage(job.stages()[from]).thenCompose(result -> {
            results[from] = result;
            return runStages(job, from + 1, results);
        });
    }

    /** Hands off the background steps, starts the others at once and waits for all of them. */
    private CompletableFuture<Long> runStage(Action[] stage) {
        List<CompletableFuture<Long>> steps = new ArrayList<>(stage.length);
        for (Action action : stage) {
            if (action.background()) {
                handOff(action);
            } else {
                steps.add(runStep(action));
            }
        }
        return CompletableFuture.allOf(steps.toArray(new CompletableFuture<?>[0])).handle((all, error) -> {
            if (error != null) { // allOf completes once every step has: the worst outcome wins
                int worst = OK;
                for (CompletableFuture<Long> step : steps) {
                    if (step.isCompletedExceptionally()) {
                        worst = Math.max(worst, outcome(failure(step)));
                    }
                }
                throw new StageFailed(worst);
            }
            long[] results = new long[steps.size()];
            for (int k = 0; k < results.length; k++) {
                results[k] = steps.get(k).join();
            }
            return combine(results);
        });
    }

    /** Runs a background step as a tracked future and records how it ended. */
    private void handOff(Action action) {
        handedOff.add(action.job());
        double handedS = now();
        CompletableFuture<Void> step = runStep(action).handle((checksum, error) -> {
            background.add(error == null
                    ? new Handed(action, handedS, now(), checksum, OK)
                    : new Handed(action, handedS, now(), 0, outcome(error)));
            return null;
        });
        handing.add(step);
        step.whenComplete((ignored, error) -> handing.remove(step));
    }

    /** Runs one step; a step that updates stock reads, works and writes under its product's
     * lock, all in one thread (a ReentrantLock belongs to the thread that took it). */
    private CompletableFuture<Long> runStep(Action action) {
        if (action.product() < 0) {
            return action instanceof Wait wait ? runAttempts(wait, 0) : doCPU((Compute) action);
        }
        Executor where = action instanceof Wait ? ioPool : cpuPool;
        return CompletableFuture.supplyAsync(() -> {
            int product = action.product();
            locks[product].lock();
            try {
                long level = stock[product];
                long result = action instanceof Wait wait ? runAttemptsHere(wait) : burn((Compute) action);
                stock[product] = level - 1;
                sold.add(product);
                return result;
            } finally {
                locks[product].unlock();
            }
        }, where);
    }

    /** Tries from try `k` until one succeeds, pausing (on a timer, no thread held) before each
     * retry; the last try's error is the step's. */
    private CompletableFuture<Long> runAttempts(Wait wait, int k) {
        CompletableFuture<Long> tried = doIO(wait, wait.attempts()[k]);
        if (k == wait.attempts().length - 1) {
            return tried;
        }
        return tried.exceptionallyCompose(error -> {
            if (!retryable(error)) {
                return CompletableFuture.failedFuture(error);
            }
            retried.add(wait.job());
            return after(wait.attempts()[k + 1].backoffS()).thenCompose(ignored -> runAttempts(wait, k + 1));
        });
    }

    /** The same tries in this thread, which holds the step's lock: pauses block it too. */
    private long runAttemptsHere(Wait wait) {
        Attempt[] attempts = wait.attempts();
        for (int k = 0; k < attempts.length - 1; k++) {
            try {
                return call(wait, attempts[k]);
            } catch (RuntimeException error) {
                if (!retryable(error)) {
                    throw error;
                }
            }
            retried.add(wait.job());
            park(attempts[k + 1].backoffS());
        }
        return call(wait, attempts[attempts.length - 1]);
    }

    /** One try, blocking a thread of the I/O pool (a thread per try in flight). */
    private CompletableFuture<Long> doIO(Wait wait, Attempt attempt) {
        return CompletableFuture.supplyAsync(() -> call(wait, attempt), ioPool);
    }

    /** One blocking try: a round trip on an idle pooled connection (a new one if none is idle),
     * each read cut at the try's deadline by the socket's timeout; or, without a service, a
     * pause of the drawn time. Returns the response's size. */
    private long call(Wait wait, Attempt attempt) {
        if (service == null) {
            if (wait.timeoutS() != null && attempt.seconds() > wait.timeoutS()) {
                park(wait.timeoutS());
                throw new TimedOut();
            }
            park(attempt.seconds());
            if (attempt.fails()) {
                throw new StepFailed();
            }
            return wait.responseBytes();
        }
        try {
            Connection connection = idle.pollLast();
            if (connection == null) {
                connection = connect();
            }
            long deadlineNs = wait.timeoutS() == null ? NO_DEADLINE
                    : System.nanoTime() + Math.round(wait.timeoutS() * 1e9);
            int failed;
            int size;
            try {
                connection.out().write(request(wait, attempt));
                receive(connection, 5, deadlineNs);
                failed = connection.buffer()[0] & 0xFF;
                size = ByteBuffer.wrap(connection.buffer(), 1, 4).getInt();
                if (failed > 1 || size != wait.responseBytes()) {
                    throw new IOException("the answer is not the latency service's (failed=" + failed + ", "
                            + Integer.toUnsignedLong(size) + " bytes where " + wait.responseBytes()
                            + " were asked for); is the service `bench serve`?");
                }
                receive(connection, size, deadlineNs);
            } catch (IOException | RuntimeException error) { // the answer may still be on its way
                connection.socket().close();
                throw error;
            }
            idle.offerLast(connection);
            if (failed == 1) {
                throw new StepFailed();
            }
            return size;
        } catch (IOException error) {
            throw new UncheckedIOException(error);
        }
    }

    /** Runs CPU work on the CPU pool. */
    private CompletableFuture<Long> doCPU(Compute work) {
        return CompletableFuture.supplyAsync(() -> burn(work), cpuPool);
    }

    // ---- Time, connections, outcomes.

    /** CLOCK_MONOTONIC in seconds, as Python's time.perf_counter: one clock for every process. */
    static double now() {
        return System.nanoTime() / 1e9;
    }

    /** A future completed `seconds` from now, on the I/O pool; at once when not positive. */
    private CompletableFuture<Void> after(double seconds) {
        if (seconds <= 0) {
            return CompletableFuture.completedFuture(null);
        }
        Executor timer = CompletableFuture.delayedExecutor(Math.round(seconds * 1e9), TimeUnit.NANOSECONDS, ioPool);
        return CompletableFuture.runAsync(() -> { }, timer);
    }

    /** Blocks this thread for `seconds`, to the nanosecond the kernel's timer gives. */
    static void park(double seconds) {
        long deadline = System.nanoTime() + Math.round(seconds * 1e9);
        for (long left = deadline - System.nanoTime(); left > 0; left = deadline - System.nanoTime()) {
            LockSupport.parkNanos(left);
        }
    }

    /** A new connection to the service; small requests go out at once (no Nagle delay). */
    private Connection connect() throws IOException {
        Socket socket = new Socket();
        socket.setTcpNoDelay(true);
        try {
            socket.connect(service);
        } catch (IOException error) {
            socket.close();
            throw new IOException("cannot reach the latency service at " + service.getHostString() + ":"
                    + service.getPort() + " (" + error.getMessage() + "); is `bench serve` running there?", error);
        }
        return new Connection(socket, socket.getInputStream(), socket.getOutputStream(), new byte[1 << 16]);
    }

    /** The wire request of one try: a 13-byte header and `request_bytes` zero bytes. */
    static byte[] request(Wait wait, Attempt attempt) {
        long delayUs = Math.min((long) Math.rint(attempt.seconds() * 1e6), MOST_DELAY_US);
        ByteBuffer request = ByteBuffer.allocate(13 + wait.requestBytes()); // big-endian, zeroed
        request.putInt((int) delayUs).putInt(wait.responseBytes()).putInt(wait.requestBytes());
        request.put((byte) (attempt.fails() ? 1 : 0));
        return request.array();
    }

    /** Reads exactly `size` bytes into the connection's buffer (round and round when it is
     * smaller), each read cut at `deadlineNs` (NO_DEADLINE: none). */
    static void receive(Connection connection, int size, long deadlineNs) throws IOException {
        byte[] buffer = connection.buffer();
        for (int got = 0; got < size; ) {
            int timeoutMs = 0; // none
            if (deadlineNs != NO_DEADLINE) { // setSoTimeout counts whole milliseconds; 0 is none
                timeoutMs = (int) Math.max(1, Math.ceil((deadlineNs - System.nanoTime()) / 1e6));
            }
            connection.socket().setSoTimeout(timeoutMs);
            int offset = got % buffer.length;
            int n = connection.in().read(buffer, offset, Math.min(size - got, buffer.length - offset));
            if (n < 0) {
                throw new EOFException("the service closed the connection");
            }
            got += n;
        }
    }

    private int maxIoWidth() {
        int widest = 0;
        for (Step[] stage : scenario) {
            int io = 0;
            for (Step step : stage) {
                io += step.io() ? 1 : 0;
            }
            widest = Math.max(widest, io);
        }
        return widest;
    }

    /** How a job or step that raised `error` ended; an unexpected error is kept as text. */
    private int outcome(Throwable error) {
        Throwable cause = unwrap(error);
        if (cause instanceof StageFailed stage) {
            return stage.outcome;
        }
        if (cause instanceof StepFailed) {
            return FAILED;
        }
        if (cause instanceof TimedOut || cause instanceof SocketTimeoutException) {
            return TIMED_OUT;
        }
        synchronized (errors) {
            if (errors.size() < KEPT_ERRORS) {
                errors.add(cause.getClass().getSimpleName() + ": " + cause.getMessage());
            }
        }
        return LOST;
    }

    /** Whether a try's error lets the next try go: a failure or a timeout, not a broken line. */
    static boolean retryable(Throwable error) {
        Throwable cause = unwrap(error);
        return cause instanceof StepFailed || cause instanceof TimedOut || cause instanceof SocketTimeoutException;
    }

    static Throwable unwrap(Throwable error) {
        while ((error instanceof CompletionException || error instanceof ExecutionException
                || error instanceof UncheckedIOException) && error.getCause() != null) {
            error = error.getCause();
        }
        return error;
    }

    static Throwable failure(CompletableFuture<?> future) {
        try {
            future.join();
            throw new IllegalStateException("the future did not fail");
        } catch (CompletionException error) {
            return error.getCause() == null ? error : error.getCause();
        }
    }

    static ThreadFactory daemons(String name) {
        AtomicInteger made = new AtomicInteger();
        return task -> {
            Thread thread = new Thread(task, name + "-" + made.incrementAndGet());
            thread.setDaemon(true); // nothing of the pools outlives the result
            return thread;
        };
    }

    // ---- The result.

    /** Writes the result to `out` as one JSON object (docs/protocol.md's Result). */
    private void writeResult() throws IOException {
        List<Long> levels = new ArrayList<>(stock.length);
        for (int p = 0; p < stock.length; p++) { // every step has ended; its lock guards it all the same
            locks[p].lock();
            try {
                levels.add(stock[p]);
            } finally {
                locks[p].unlock();
            }
        }
        try (Writer writer = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
            StringBuilder row = new StringBuilder(128);
            writer.write("{\"records\":[");
            String comma = "";
            for (Finished r : records) {
                row.setLength(0);
                row.append(comma).append('[').append(r.index()).append(',').append(r.submittedS()).append(',')
                        .append(r.startedS()).append(',').append(r.endedS()).append(",\"")
                        .append(Long.toUnsignedString(r.checksum())).append("\",").append(r.outcome()).append(',')
                        .append(Double.isNaN(r.takenS()) ? "null" : Double.toString(r.takenS())).append(']');
                writer.append(row);
                comma = ",";
            }
            writer.write("],\"background\":[");
            comma = "";
            for (Handed h : background) {
                row.setLength(0);
                row.append(comma).append('[').append(h.action().job()).append(',').append(h.action().stage())
                        .append(',').append(h.action().step()).append(',').append(h.handedS()).append(',')
                        .append(h.endedS()).append(",\"").append(Long.toUnsignedString(h.checksum())).append("\",")
                        .append(h.outcome()).append(']');
                writer.append(row);
                comma = ",";
            }
            writer.write("],\"handed_off\":");
            writeIntegers(writer, handedOff);
            writer.write(",\"retried\":");
            writeIntegers(writer, retried);
            writer.write(",\"sold\":");
            writeIntegers(writer, sold);
            writer.write(",\"stock\":");
            writeIntegers(writer, levels);
            writer.write(",\"discarded\":");
            writeIntegers(writer, discarded);
            writer.write(",\"errors\":");
            synchronized (errors) {
                writer.write(Json.write(errors));
            }
            writer.write("}\n");
        }
    }

    static void writeIntegers(Writer writer, Collection<? extends Number> values) throws IOException {
        StringJoiner joined = new StringJoiner(",", "[", "]");
        for (Number value : values) {
            joined.add(value.toString());
        }
        writer.write(joined.toString());
    }

    // ---- Job i's draws (models.workload: Stream, draw_job, _draw_action, Dist.draw_ms).

    /** The random numbers of one job: SplitMix64 from a state mixed out of the seed and the index. */
    static final class Stream {
        private long state;

        Stream(long seed, long index) {
            state = mix(mix(seed) ^ index);
        }

        long bits() {
            state += GOLDEN;
            return mix(state);
        }

        /** Uniform on [0, 1): the next word's top 53 bits. */
        double random() {
            return (bits() >>> 11) * 0x1.0p-53;
        }
    }

    /** SplitMix64's finaliser (Steele, Lea and Flood, 2014): a bijection of 64-bit words. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58_476D_1CE4_E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D0_49BB_1331_11EBL;
        return z ^ (z >>> 31);
    }

    /** Job `index` with every random draw made: the same as every model's. */
    private Job drawJob(int index) {
        Stream rng = new Stream(seed, index);
        Action[][] stages = new Action[scenario.length][];
        for (int s = 0; s < scenario.length; s++) {
            stages[s] = new Action[scenario[s].length];
            for (int k = 0; k < scenario[s].length; k++) {
                stages[s][k] = drawAction(index, s, k, scenario[s][k], rng);
            }
        }
        return new Job(index, stages);
    }

    private Action drawAction(int job, int stage, int index, Step step, Stream rng) {
        int product = step.popularity() == null ? -1 : choice(step.popularity(), rng);
        if (step.io()) {
            Attempt[] attempts = new Attempt[step.retries() + 1];
            for (int k = 0; k < attempts.length; k++) {
                double seconds = drawMs(step.dist(), rng) / 1000.0;
                boolean fails = rng.random() < step.failRate();
                double backoffS = k == 0 ? 0.0 : step.backoffMs() * (double) (1L << (k - 1)) / 1000.0;
                attempts[k] = new Attempt(seconds, fails, backoffS);
            }
            Double timeoutS = step.timeoutMs() == null ? null : step.timeoutMs() / 1000.0;
            return new Wait(job, stage, index, attempts, timeoutS, step.requestBytes(), step.responseBytes(),
                    product, step.background());
        }
        long units = (long) Math.rint(drawMs(step.dist(), rng) * rates[step.kind().ordinal()]);
        return new Compute(job, stage, index, step.kind(), units, rng.bits(), product, step.background());
    }

    /** An index drawn in proportion to its weight: the first running sum above a uniform share
     * of the total, at most the last index (Python's bisect_right(cum, x, 0, n - 1)). */
    static int choice(double[] cumulative, Stream rng) {
        double x = rng.random() * cumulative[cumulative.length - 1];
        int low = 0;
        int high = cumulative.length - 1;
        while (low < high) {
            int middle = (low + high) >>> 1;
            if (x < cumulative[middle]) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        return low;
    }

    /** One duration in milliseconds. */
    static double drawMs(Dist dist, Stream rng) {
        switch (dist.kind()) {
            case "uniform":
                return dist.lowMs() + (dist.highMs() - dist.lowMs()) * rng.random();
            case "lognormal": {
                double mu = M.log(dist.p50Ms());
                double sigma = M.log(dist.p99Ms() / dist.p50Ms()) / Z99;
                double radius = M.sqrt(-2.0 * M.log(1.0 - rng.random()));
                return M.exp(mu + sigma * radius * M.cos(2.0 * Math.PI * rng.random()));
            }
            default:
                if (dist.kind().equals("constant") || dist.meanMs() == 0) {
                    return dist.meanMs();
                }
                return -M.log(1.0 - rng.random()) / (1.0 / dist.meanMs());
        }
    }

    /** The math functions of the draws: HotSpot's Math, as StrictMath (fdlibm) strays further
     * from glibc's libm, which Python calls. Neither matches it bit for bit: on 50,000 draws
     * each, Math's log, exp, cos and pow differ from glibc's by one ulp in 0.05-0.25% of calls,
     * StrictMath's in 3-10% (and glibc is not correctly rounded either). One ulp moves a drawn
     * integer (a CPU step's units, a try's delay in microseconds, a product) only when the
     * value sits on a rounding edge: the jobs agree where it counts. */
    static final class M {
        static double log(double x) {
            return Math.log(x);
        }

        static double exp(double x) {
            return Math.exp(x);
        }

        static double cos(double x) {
            return Math.cos(x);
        }

        static double sqrt(double x) {
            return Math.sqrt(x); // IEEE 754's own, correctly rounded everywhere
        }

        static double pow(double x, double y) {
            return Math.pow(x, y);
        }
    }

    /** Cumulative Zipf weights of products 0..products-1, summed in order. */
    static double[] popularity(int products, double skew) {
        double[] cumulative = new double[products];
        double sum = 0.0;
        for (int rank = 1; rank <= products; rank++) {
            sum += 1.0 / M.pow(rank, skew);
            cumulative[rank - 1] = sum;
        }
        return cumulative;
    }

    // ---- The CPU kernels and checksums (models.workload: burn_python, burn_native, burn_json, combine).

    static long burn(Compute work) {
        return switch (work.kind()) {
            case PYTHON -> burnPython(work.units(), work.seed());
            case NATIVE -> burnNative(work.units());
            case JSON -> burnJson(work.units(), work.seed());
        };
    }

    /** The LCG state after `iterations` steps from `seed` (mod 2^64: a long's overflow). */
    static long burnPython(long iterations, long seed) {
        long x = seed;
        for (long i = 0; i < iterations; i++) {
            x = x * LCG_A + LCG_C;
        }
        return x;
    }

    /** SHA-256 over `blocks` blocks of 16 KiB; the digest's first 8 bytes, big-endian. */
    static long burnNative(long blocks) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException error) {
            throw new IllegalStateException(error);
        }
        for (long b = 0; b < blocks; b++) {
            digest.update(NATIVE_BLOCK);
        }
        return ByteBuffer.wrap(digest.digest()).getLong();
    }

    /** For each order: build it as maps, lists and strings, encode it as JSON and decode it
     * (with this file's own small JSON code), total it and render its receipt; the next state
     * comes from the decoded id and the receipt's length, so the result is the LCG's state. */
    static long burnJson(long orders, long seed) {
        long x = seed;
        for (long n = 0; n < orders; n++) {
            Map<String, Object> decoded = Json.object(Json.parse(Json.write(order(x))));
            Map<String, Object> customer = Json.object(decoded.get("customer"));
            long cents = 0;
            StringJoiner lines = new StringJoiner("\n");
            for (Object entry : Json.list(decoded.get("items"))) {
                Map<String, Object> item = Json.object(entry);
                long quantity = (Long) item.get("quantity");
                long priceCents = (Long) item.get("price_cents");
                cents += quantity * priceCents;
                lines.add(line(quantity, (String) item.get("sku"), priceCents / 100.0));
            }
            long id = (Long) decoded.get("id");
            String receipt = receipt(id, (String) customer.get("email"), lines.toString(), cents / 100.0,
                    (String) decoded.get("currency"));
            x = id * LCG_A + LCG_C + receipt.length() - RECEIPT_BYTES;
        }
        return x;
    }

    /** The order drawn from `x`, as a service's handler builds it. */
    static Map<String, Object> order(long x) {
        List<Object> items = new ArrayList<>(ORDER_ITEMS);
        for (int k = 0; k < ORDER_ITEMS; k++) {
            items.add(Json.of(
                    "sku", String.format(Locale.ROOT, "SKU-%05d", (x >>> (16 * k)) & 0xFFFF),
                    "quantity", 1 + ((x >>> (16 * k + 8)) & 3),
                    "price_cents", 100 + ((x >>> (16 * k + 4)) & 0x3FF)));
        }
        return Json.of(
                "id", x,
                "customer", Json.of("email", String.format(Locale.ROOT, "c%05d@example.com", x & 0xFFFF), "country", "FR"),
                "currency", "EUR",
                "items", items);
    }

    static String receipt(long id, String email, String lines, double total, String currency) {
        String digits = Long.toUnsignedString(id); // the id is a u64: %020d of its unsigned value
        return String.format(Locale.ROOT, "Order %s\nCustomer %s\n%s\nTotal %10.2f %s\n",
                "0".repeat(20 - digits.length()) + digits, email, lines, total, currency);
    }

    static String line(long quantity, String sku, double price) {
        return String.format(Locale.ROOT, "%02d x %s at %8.2f", quantity, sku, price);
    }

    static byte[] nativeBlock() {
        byte[] block = new byte[16384];
        for (int i = 0; i < block.length; i++) {
            block[i] = (byte) i;
        }
        return block;
    }

    /** Folds step results, in order, into one checksum. */
    static long combine(long[] values) {
        long acc = 0;
        for (long value : values) {
            acc = (acc * 1_000_003L) ^ value;
        }
        return acc;
    }

    // ---- The scenario, from SPEC.json.

    static Step step(Map<String, Object> data) {
        boolean io = switch (String.valueOf(data.get("type"))) {
            case "io" -> true;
            case "cpu" -> false;
            default -> throw new IllegalArgumentException("a step's type is " + data.get("type") + "; expected io or cpu");
        };
        double[] weights = null;
        if (data.get("lock") != null) {
            Map<String, Object> lock = Json.object(data.get("lock"));
            weights = popularity((int) Json.integer(lock, "products"), Json.number(lock, "skew"));
        }
        boolean background = Boolean.TRUE.equals(data.get("background"));
        if (io) {
            return new Step(true, background, weights, dist(data.get("wait")),
                    (int) Json.integer(data, "request_bytes"), (int) Json.integer(data, "response_bytes"),
                    Json.number(data, "fail_rate"), (int) Json.integer(data, "retries"), Json.number(data, "backoff_ms"),
                    data.get("timeout_ms") == null ? null : Json.number(data, "timeout_ms"), null);
        }
        Kind kind = Kind.valueOf(String.valueOf(data.get("kind")).toUpperCase(Locale.ROOT));
        return new Step(false, background, weights, dist(data.get("cpu")), 0, 0, 0.0, 0, 0.0, null, kind);
    }

    static Dist dist(Object value) {
        Map<String, Object> data = Json.object(value);
        return new Dist(String.valueOf(data.get("kind")), Json.number(data, "mean_ms"), Json.number(data, "low_ms"),
                Json.number(data, "high_ms"), Json.number(data, "p50_ms"), Json.number(data, "p99_ms"));
    }

    // ---- JSON: Java 17's JDK has none, so a small reader and writer of our own.

    /** A minimal JSON reader and writer: objects as LinkedHashMaps, arrays as ArrayLists,
     * integers as Longs (their low 64 bits, as Python's `& MASK` takes them: a u64 above
     * Long.MAX_VALUE reads as its two's-complement long), other numbers as Doubles (NaN and
     * Infinity as Python's json writes them). */
    static final class Json {
        private final String text;
        private int at;

        private Json(String text) {
            this.text = text;
        }

        static Object parse(String text) {
            Json reader = new Json(text);
            Object value = reader.value();
            reader.space();
            if (reader.at != text.length()) {
                throw reader.error("text after the value");
            }
            return value;
        }

        private Object value() {
            space();
            if (at >= text.length()) {
                throw error("a value is missing");
            }
            char c = text.charAt(at);
            switch (c) {
                case '{': {
                    Map<String, Object> object = new LinkedHashMap<>();
                    at++;
                    if (next() == '}') {
                        at++;
                        return object;
                    }
                    while (true) {
                        if (next() != '"') {
                            throw error("a key is missing");
                        }
                        String key = string();
                        if (next() != ':') {
                            throw error("':' is missing");
                        }
                        at++;
                        object.put(key, value());
                        char after = next();
                        at++;
                        if (after == '}') {
                            return object;
                        }
                        if (after != ',') {
                            throw error("',' or '}' is missing");
                        }
                    }
                }
                case '[': {
                    List<Object> array = new ArrayList<>();
                    at++;
                    if (next() == ']') {
                        at++;
                        return array;
                    }
                    while (true) {
                        array.add(value());
                        char after = next();
                        at++;
                        if (after == ']') {
                            return array;
                        }
                        if (after != ',') {
                            throw error("',' or ']' is missing");
                        }
                    }
                }
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                case 'N':
                    return literal("NaN", Double.NaN);
                case 'I':
                    return literal("Infinity", Double.POSITIVE_INFINITY);
                default:
                    if (text.startsWith("-Infinity", at)) {
                        return literal("-Infinity", Double.NEGATIVE_INFINITY);
                    }
                    return number();
            }
        }

        private Object number() {
            int start = at;
            boolean negative = text.charAt(at) == '-';
            if (negative) {
                at++;
            }
            boolean integral = true;
            long value = 0; // mod 2^64, as the long's overflow does
            for (; at < text.length(); at++) {
                char c = text.charAt(at);
                if (c >= '0' && c <= '9') {
                    value = value * 10 + (c - '0');
                } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                    integral = false;
                } else {
                    break;
                }
            }
            if (at == start + (negative ? 1 : 0)) {
                throw error("a value is missing");
            }
            if (!integral) {
                return Double.parseDouble(text.substring(start, at));
            }
            return negative ? -value : value;
        }

        private String string() {
            at++; // the opening quote
            StringBuilder out = null;
            int start = at;
            while (true) {
                if (at >= text.length()) {
                    throw error("a string is not closed");
                }
                char c = text.charAt(at);
                if (c == '"') {
                    String tail = text.substring(start, at++);
                    return out == null ? tail : out.append(tail).toString();
                }
                if (c != '\\') {
                    at++;
                    continue;
                }
                if (out == null) {
                    out = new StringBuilder();
                }
                out.append(text, start, at);
                char escaped = text.charAt(at + 1);
                at += 2;
                switch (escaped) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        at += 4;
                    }
                    default -> out.append(escaped); // " \ /
                }
                start = at;
            }
        }

        private Object literal(String word, Object value) {
            if (!text.startsWith(word, at)) {
                throw error("unexpected text");
            }
            at += word.length();
            return value;
        }

        private char next() {
            space();
            if (at >= text.length()) {
                throw error("the text ends too soon");
            }
            return text.charAt(at);
        }

        private void space() {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("bad JSON at character " + at + ": " + what);
        }

        /** `value` as JSON text; a Long is a u64 (every integer here is), written unsigned. */
        static String write(Object value) {
            StringBuilder out = new StringBuilder(256);
            write(out, value);
            return out.toString();
        }

        private static void write(StringBuilder out, Object value) {
            if (value instanceof Map<?, ?> map) {
                out.append('{');
                String comma = "";
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    out.append(comma);
                    quote(out, entry.getKey().toString());
                    out.append(':');
                    write(out, entry.getValue());
                    comma = ",";
                }
                out.append('}');
            } else if (value instanceof List<?> list) {
                out.append('[');
                String comma = "";
                for (Object item : list) {
                    out.append(comma);
                    write(out, item);
                    comma = ",";
                }
                out.append(']');
            } else if (value instanceof String string) {
                quote(out, string);
            } else if (value instanceof Long number) {
                out.append(Long.toUnsignedString(number));
            } else {
                out.append(value); // null, a Boolean, an Integer, a finite Double
            }
        }

        private static void quote(StringBuilder out, String text) {
            out.append('"');
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == '"' || c == '\\') {
                    out.append('\\').append(c);
                } else if (c < 0x20) {
                    out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            out.append('"');
        }

        /** An object of the given keys and values, in their order. */
        static Map<String, Object> of(Object... pairs) {
            Map<String, Object> object = new LinkedHashMap<>();
            for (int i = 0; i < pairs.length; i += 2) {
                object.put((String) pairs[i], pairs[i + 1]);
            }
            return object;
        }

        @SuppressWarnings("unchecked")
        static Map<String, Object> object(Object value) {
            if (!(value instanceof Map)) {
                throw new IllegalArgumentException("expected a JSON object, got " + value);
            }
            return (Map<String, Object>) value;
        }

        @SuppressWarnings("unchecked")
        static List<Object> list(Object value) {
            if (!(value instanceof List)) {
                throw new IllegalArgumentException("expected a JSON array, got " + value);
            }
            return (List<Object>) value;
        }

        /** The number at `key` (0 when absent: a distribution lists only its own fields). */
        static double number(Map<String, Object> object, String key) {
            Object value = object.get(key);
            return value == null ? 0.0 : number(value);
        }

        static double number(Object value) {
            if (!(value instanceof Number number)) {
                throw new IllegalArgumentException("expected a number, got " + value);
            }
            return number.doubleValue();
        }

        static long integer(Map<String, Object> object, String key) {
            if (!(object.get(key) instanceof Long number)) {
                throw new IllegalArgumentException(key + " should be an integer, not " + object.get(key));
            }
            return number;
        }
    }
}
