// go: one goroutine per user; a stage's steps run as goroutines joined by a sync.WaitGroup.
//
// The go model runs one point of the suite as docs/protocol.md says: `model SPEC.json` reads
// the point's spec, opens its connections to the latency service, prints `start S`, runs the
// jobs, waits for the background steps and writes its records, retries, sales, stock,
// discarded indices and errors to the spec's `out`. Job i's draws (but for the last bit of a
// duration: see below), its CPU kernels and its checksums are those of models/workload.py; the
// functions from run to doCPU follow models/threads_model.py and models/asyncio_model.py in
// name and order, so they read side by side. The stock is guarded by one sync.Mutex per
// product, a try's timeout is a context deadline (over tcp, the connection's deadline),
// connections are kept in a mutex-guarded pool, and background steps are goroutines counted by
// a WaitGroup.
//
// Why some lines are as they are:
//   - A step that fails cancels its stage's context, as asyncio's TaskGroup cancels its tasks:
//     a sleep or a backoff pause ends at once, and no further try starts; a try on a connection
//     runs to its own deadline, as only a deadline interrupts a net.Conn, and a goroutine per
//     try to set one on cancellation (Go 1.19 has no context.AfterFunc) costs more than it saves.
//   - A step goes over the wire protocol whatever its `via`: this model has no HTTP client
//     and no database driver, as the Python models over --transport tcp.
//   - The clock is CLOCK_MONOTONIC, read once at the start; later readings add Go's monotonic
//     time since then, which comes from the same clock.
//   - Go's math.Log, Exp, Cos and Pow are its own, not the C library's that Python calls: 7%,
//     13%, 27% and half of their results differ from glibc's in the last bit, and so do many
//     durations drawn. What a job does with them agrees (docs/protocol.md): over
//     1.2 million jobs none of 20 million delays, products, failures, units and seeds differed.
//     The float64(...) conversions around products keep the compiler from fusing a multiply
//     and an add (the language allows it), so those round as Python's do.
//
// Build with the standard library alone: go build -o model model.go
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// How a job (or a background step) ended: the outcome of a record.
const (
	outcomeOK = iota
	outcomeFailed
	outcomeTimedOut
	outcomeLost
)

const (
	stockStart = 1_000_000_000_000 // every product's stock at the start
	keptErrors = 5                 // the first unexpected errors say what went wrong
	minDrainS  = 5.0               // the shortest time an open load may work off its queue
)

var (
	errFailed   = errors.New("the service answered with an error")
	errTimedOut = errors.New("no answer before the timeout")
)

// shared is what the goroutines of a run share.
type shared struct {
	window    *window
	tally     *tally
	locks     []sync.Mutex // one per product
	stock     []int64      // each product's stock, guarded by its lock
	pool      *pool        // connections to the latency service; nil: I/O waits on a timer
	handedOff sync.WaitGroup
}

func main() {
	if len(os.Args) != 2 {
		fail(errors.New("usage: model SPEC.json"))
	}
	w, err := readSpec(os.Args[1])
	if err != nil {
		fail(err)
	}
	result, err := run(w)
	if err != nil {
		fail(err)
	}
	data, err := json.Marshal(result)
	if err == nil {
		err = os.WriteFile(w.out, data, 0o644)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "model:", err)
	os.Exit(1)
}

// run opens the connections, runs the window's jobs and waits for the background work.
func run(w *window) (*tally, error) {
	sh := &shared{window: w, tally: newTally(), locks: make([]sync.Mutex, w.products)}
	sh.stock = make([]int64, w.products)
	for p := range sh.stock {
		sh.stock[p] = stockStart
	}
	if w.service != "" {
		sh.pool = &pool{address: w.service}
		// One connection per I/O step a user may await, opened before the clock starts.
		for c := 0; c < w.concurrency*w.maxIOWidth; c++ {
			conn, err := net.Dial("tcp", w.service)
			if err != nil {
				sh.pool.close()
				return nil, fmt.Errorf("cannot connect to the latency service: %w", err)
			}
			sh.pool.put(conn)
		}
		defer sh.pool.close()
	}
	startUsers(sh)
	sh.handedOff.Wait() // the background work must end before the point does
	sh.tally.Stock = sh.stock
	return sh.tally, nil
}

// startUsers starts the clock, then one goroutine per user, and waits for all of them.
func startUsers(sh *shared) {
	var next int64 = -1
	take := func() int { return int(atomic.AddInt64(&next, 1)) }
	w := sh.window
	w.startedS = now()
	fmt.Printf("start %s\n", strconv.FormatFloat(w.startedS, 'f', -1, 64)) // os.Stdout is unbuffered
	var users sync.WaitGroup
	for user := 0; user < w.concurrency; user++ {
		users.Add(1)
		go func(user int) {
			defer users.Done()
			serve(w, user, take, sh)
		}(user)
	}
	users.Wait()
}

// serve joins at this user's turn, then runs jobs back to back (open load: each when it is due)
// until the window closes.
func serve(w *window, user int, take func() int, sh *shared) {
	sleepUntil(w.userStartS(user))
	for {
		index := take()
		job, takenS := w.job(index)
		if job == nil {
			sh.tally.discard(index)
			return
		}
		if w.arrivals != nil { // open load: wait until it is due
			sleepUntil(w.dueS(index, 0))
		}
		startedS := now()
		checksum, outcome := runJob(job, sh)
		endedS := now()
		submittedS := w.dueS(index, startedS)
		if w.arrivals == nil {
			takenS = math.NaN() // a closed job is taken as it is submitted
		}
		sh.tally.add(record{index, submittedS, startedS, endedS, checksum, outcome, takenS})
	}
}

// runJob runs the stages in order; a stage that fails ends the job.
func runJob(j *job, sh *shared) (checksum uint64, outcome int) {
	results := make([]uint64, len(j.stages))
	for s, stage := range j.stages {
		result, err := runStage(stage, sh)
		if err != nil {
			return 0, sh.tally.outcome(err)
		}
		results[s] = result
	}
	return combine(results), outcomeOK
}

// runStage hands off the background steps, then runs the others at the same time, each in a
// goroutine of its own, and waits for them; the first that fails cancels the others. A stage of
// background steps alone is worth combine of nothing, 0, as the Verifier expects.
func runStage(stage []action, sh *shared) (uint64, error) {
	var steps []*action
	for k := range stage {
		if stage[k].background {
			sh.tally.handOff(stage[k].job)
			sh.handedOff.Add(1)
			go handOff(&stage[k], sh)
		} else {
			steps = append(steps, &stage[k])
		}
	}
	if len(steps) == 1 { // a lone step needs neither a goroutine nor a context of its own
		result, err := runStep(context.Background(), steps[0], sh)
		if err != nil {
			return 0, err
		}
		return combine([]uint64{result}), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results, errs := make([]uint64, len(steps)), make([]error, len(steps))
	var group sync.WaitGroup
	for k, a := range steps {
		group.Add(1)
		go func(k int, a *action) {
			defer group.Done()
			if results[k], errs[k] = runStep(ctx, a, sh); errs[k] != nil {
				cancel()
			}
		}(k, a)
	}
	group.Wait()
	if err := worst(errs); err != nil {
		return 0, err
	}
	return combine(results), nil
}

// handOff runs a background step to its end and records how it ended.
func handOff(a *action, sh *shared) {
	defer sh.handedOff.Done()
	handedS := now()
	checksum, err := runStep(context.Background(), a, sh)
	outcome := outcomeOK
	if err != nil {
		checksum, outcome = 0, sh.tally.outcome(err)
	}
	sh.tally.addStep(backgroundRecord{a.job, a.stage, a.step, handedS, now(), checksum, outcome})
}

// runStep runs one step; a step that updates stock reads, works and writes under its
// product's lock.
func runStep(ctx context.Context, a *action, sh *shared) (uint64, error) {
	if a.product < 0 {
		return runAction(ctx, a, sh)
	}
	sh.locks[a.product].Lock()
	defer sh.locks[a.product].Unlock()
	level := sh.stock[a.product]
	result, err := runAction(ctx, a, sh)
	if err != nil {
		return 0, err
	}
	sh.stock[a.product] = level - 1
	sh.tally.sell(a.product)
	return result, nil
}

// runAction makes a step's tries, or does its CPU work.
func runAction(ctx context.Context, a *action, sh *shared) (uint64, error) {
	if a.io {
		return runAttempts(ctx, a, sh)
	}
	return doCPU(a), nil
}

// runAttempts tries until a try succeeds, pausing before each retry; the last try's error is
// the step's. An error that is neither a failure nor a timeout ends the step at once.
func runAttempts(ctx context.Context, a *action, sh *shared) (uint64, error) {
	var err error
	for k, try := range a.attempts {
		if k > 0 {
			if ctx.Err() != nil { // another step of the stage failed: no more tries
				return 0, ctx.Err()
			}
			sh.tally.retry(a.job)
			if err := sleep(ctx, try.backoffS); err != nil {
				return 0, err
			}
		}
		var result uint64
		if result, err = doIO(ctx, a, try, sh); err == nil {
			return result, nil
		}
		if err != errFailed && err != errTimedOut {
			return 0, err
		}
	}
	return 0, err
}

// doIO makes one try: a round trip on a pooled connection (or a sleep on the runtime's
// timer), given up at the step's timeout. Returns the response's size.
func doIO(ctx context.Context, a *action, try attempt, sh *shared) (uint64, error) {
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	if sh.pool == nil {
		if err := sleep(ctx, try.seconds); err != nil {
			return 0, err
		}
		if try.fails {
			return 0, errFailed
		}
		return uint64(a.responseBytes), nil
	}
	if err := ctx.Err(); err != nil { // cancelled before it began
		return 0, err
	}
	conn, err := sh.pool.get(ctx)
	if err != nil {
		return 0, tryError(ctx, err)
	}
	failed, size, err := roundTrip(ctx, conn, a, try)
	if err != nil { // given up or broken mid-request: the answer may still come
		conn.Close()
		return 0, tryError(ctx, err)
	}
	sh.pool.put(conn)
	if failed {
		return 0, errFailed
	}
	return size, nil
}

// doCPU computes in the goroutine of its step: the runtime spreads them over the cores.
func doCPU(work *action) uint64 {
	switch work.kind {
	case "python":
		return burnPython(work.units, work.seed)
	case "json":
		return burnJSON(work.units, work.seed)
	}
	return burnNative(work.units)
}

// worst is the error a stage ends with: the one of the largest outcome, leaving out the steps
// cancelled because another one failed.
func worst(errs []error) error {
	var found error
	for _, err := range errs {
		if err != nil && err != context.Canceled && (found == nil || outcomeOf(err) > outcomeOf(found)) {
			found = err
		}
	}
	return found
}

// tryError is the error a try ends with: context.Canceled once another step of its stage has
// failed, errTimedOut once its deadline has passed, or err itself.
func tryError(ctx context.Context, err error) error {
	var netErr net.Error
	switch {
	case ctx.Err() == context.Canceled:
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return errTimedOut
	}
	return err
}

// sleep waits `seconds`, or until ctx is done: cancelled, or timed out at its deadline.
func sleep(ctx context.Context, seconds float64) error {
	wait := duration(seconds)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		// Drawn to outlast its deadline: wait for the deadline alone, since a goroutine that
		// runs late would find both ready, and select would pick one at random.
		<-ctx.Done()
		return tryError(ctx, ctx.Err())
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return tryError(ctx, ctx.Err())
	}
}

// The wire protocol (models/wire.py), integers big-endian:
//
//	request  = delay_us:u32  response_bytes:u32  request_bytes:u32  fail:u8  payload[request_bytes]
//	response = failed:u8  response_bytes:u32  payload[response_bytes]

const mostDelayUs = 0x40FFFFFF // 18 minutes: a request's first byte stays below an ASCII letter

// roundTrip sends one try of `a` and reads the answer in full, by ctx's deadline if it has one.
func roundTrip(ctx context.Context, conn net.Conn, a *action, try attempt) (bool, uint64, error) {
	deadline, _ := ctx.Deadline() // the zero time: none (a pooled connection may hold an old one)
	if err := conn.SetDeadline(deadline); err != nil {
		return false, 0, err
	}
	request := make([]byte, 13+a.requestBytes)
	delayUs := math.Min(math.RoundToEven(try.seconds*1e6), mostDelayUs)
	binary.BigEndian.PutUint32(request[0:], uint32(delayUs))
	binary.BigEndian.PutUint32(request[4:], uint32(a.responseBytes))
	binary.BigEndian.PutUint32(request[8:], uint32(a.requestBytes))
	if try.fails {
		request[12] = 1
	}
	if _, err := conn.Write(request); err != nil {
		return false, 0, err
	}
	var header [5]byte
	if _, err := io.ReadFull(conn, header[:]); err != nil {
		return false, 0, err
	}
	failed, size := header[0], binary.BigEndian.Uint32(header[1:])
	if failed > 1 || size != uint32(a.responseBytes) { // read no body that may never come
		return false, 0, fmt.Errorf("the answer is not the latency service's (failed=%d, %d bytes "+
			"where %d were asked for); is the service `bench serve`?", failed, size, a.responseBytes)
	}
	if _, err := io.CopyN(io.Discard, conn, int64(size)); err != nil {
		return false, 0, err
	}
	return failed == 1, uint64(size), nil
}

// pool holds the idle connections to the latency service.
type pool struct {
	address string
	mu      sync.Mutex
	idle    []net.Conn
}

// get takes an idle connection, or opens one when none is idle.
func (p *pool) get(ctx context.Context) (net.Conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		conn := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return conn, nil
	}
	p.mu.Unlock()
	var dialer net.Dialer
	return dialer.DialContext(ctx, "tcp", p.address) // Go's TCP connections have no Nagle delay
}

func (p *pool) put(conn net.Conn) {
	p.mu.Lock()
	p.idle = append(p.idle, conn)
	p.mu.Unlock()
}

func (p *pool) close() {
	for _, conn := range p.idle {
		conn.Close()
	}
}

// The load (models/load.py's Window): which job a user runs next, and when.

type window struct {
	scenario    [][]*stepSpec
	calibration calibration
	seed        uint64
	concurrency int
	warmupS     float64
	durationS   float64
	rampS       float64   // how long users take to join
	maxJobs     int       // -1: no cap
	service     string    // host:port of the latency service; "": I/O waits on a timer
	arrivals    []float64 // open load: when each job is due, from the start; nil: closed load
	out         string
	products    int // how many products the stock holds
	maxIOWidth  int // the most I/O steps of one stage: the connections one user may hold
	startedS    float64
}

// userStartS is when user `user` submits its first job: users join one by one over the ramp
// (closed load), or all at the start (open load: the schedule paces the jobs).
func (w *window) userStartS(user int) float64 {
	if w.arrivals != nil {
		return w.startedS
	}
	return w.startedS + w.rampS*float64(user)/float64(w.concurrency)
}

// dueS is when job `index` is submitted: when it is due (open load), or now (closed).
func (w *window) dueS(index int, nowS float64) float64 {
	if w.arrivals == nil {
		return nowS
	}
	return w.startedS + w.arrivals[index]
}

// job is job `index`, or nil once the window has closed (open load: once no job is due before
// the close, or the queue could not be worked off in time); and when it was taken.
func (w *window) job(index int) (*job, float64) {
	nowS := now()
	stopS := w.startedS + w.warmupS + w.durationS
	if (w.maxJobs >= 0 && index >= w.maxJobs) ||
		(w.arrivals == nil && nowS >= stopS) ||
		(w.arrivals != nil && (index >= len(w.arrivals) ||
			w.startedS+w.arrivals[index] >= stopS ||
			nowS >= stopS+math.Max(w.durationS, minDrainS))) {
		return nil, nowS
	}
	return drawJob(w.scenario, w.calibration, w.seed, index), nowS
}

// The spec, as docs/protocol.md gives it.

type dist struct {
	Kind   string  `json:"kind"`
	MeanMs float64 `json:"mean_ms"`
	LowMs  float64 `json:"low_ms"`
	HighMs float64 `json:"high_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

type stepSpec struct {
	Type          string   `json:"type"` // io or cpu
	Wait          *dist    `json:"wait"`
	CPU           *dist    `json:"cpu"`
	Kind          string   `json:"kind"`
	RequestBytes  int      `json:"request_bytes"`
	ResponseBytes int      `json:"response_bytes"`
	FailRate      float64  `json:"fail_rate"`
	Retries       int      `json:"retries"`
	BackoffMs     float64  `json:"backoff_ms"`
	TimeoutMs     *float64 `json:"timeout_ms"`
	Lock          *struct {
		Products int     `json:"products"`
		Skew     float64 `json:"skew"`
	} `json:"lock"`
	Background bool      `json:"background"`
	popularity []float64 // the lock's cumulative Zipf weights of its products
}

type calibration struct {
	PythonIterationsPerMs float64 `json:"python_iterations_per_ms"`
	NativeBlocksPerMs     float64 `json:"native_blocks_per_ms"`
	JSONOrdersPerMs       float64 `json:"json_orders_per_ms"`
}

func readSpec(path string) (*window, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec struct {
		Protocol int `json:"protocol"`
		Scenario struct {
			Stages []struct {
				Steps []*stepSpec `json:"steps"`
			} `json:"stages"`
		} `json:"scenario"`
		Calibration calibration `json:"calibration"`
		Seed        json.Number `json:"seed"`
		Concurrency int         `json:"concurrency"`
		WarmupS     float64     `json:"warmup_s"`
		DurationS   float64     `json:"duration_s"`
		RampS       *float64    `json:"ramp_s"`
		MaxJobs     *int        `json:"max_jobs"`
		Service     []any       `json:"service"`
		Arrivals    []float64   `json:"arrivals"` // null stays nil; [] is an open load of no job
		Out         string      `json:"out"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if spec.Protocol != 1 {
		return nil, fmt.Errorf("%s: protocol %d; this model speaks protocol 1", path, spec.Protocol)
	}
	w := &window{calibration: spec.Calibration, concurrency: spec.Concurrency,
		warmupS: spec.WarmupS, durationS: spec.DurationS, rampS: spec.WarmupS, maxJobs: -1,
		arrivals: spec.Arrivals, out: spec.Out}
	if w.seed, err = strconv.ParseUint(spec.Seed.String(), 10, 64); err != nil {
		seed, err := strconv.ParseInt(spec.Seed.String(), 10, 64) // Python's seed & (2^64 - 1)
		if err != nil {
			return nil, fmt.Errorf("%s: seed %s is not a 64-bit integer", path, spec.Seed)
		}
		w.seed = uint64(seed)
	}
	if spec.RampS != nil {
		w.rampS = *spec.RampS
	}
	if spec.MaxJobs != nil {
		w.maxJobs = *spec.MaxJobs
	}
	if spec.Service != nil {
		var host string
		var port float64
		ok := len(spec.Service) == 2
		if ok {
			host, ok = spec.Service[0].(string)
		}
		if ok {
			port, ok = spec.Service[1].(float64)
		}
		if !ok {
			return nil, fmt.Errorf("%s: service %v is not [host, port]", path, spec.Service)
		}
		w.service = net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	for _, stage := range spec.Scenario.Stages {
		ios := 0
		for _, st := range stage.Steps {
			if st.Type == "io" {
				ios++
			}
			if st.Lock != nil {
				w.products = max(w.products, st.Lock.Products)
				st.popularity = make([]float64, st.Lock.Products)
				sum := 0.0
				for k := range st.popularity {
					sum += 1.0 / math.Pow(float64(k+1), st.Lock.Skew)
					st.popularity[k] = sum
				}
			}
		}
		w.maxIOWidth = max(w.maxIOWidth, ios)
		w.scenario = append(w.scenario, stage.Steps)
	}
	return w, nil
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// The result: what the harness reads back.

type tally struct {
	mu         sync.Mutex
	Records    []record           `json:"records"`
	Background []backgroundRecord `json:"background"`
	HandedOff  []int              `json:"handed_off"` // the job of each background step handed off
	Retried    []int              `json:"retried"`    // the job of each retry
	Sold       []int              `json:"sold"`       // the product of each sale
	Stock      []int64            `json:"stock"`      // each product's stock at the end
	Discarded  []int              `json:"discarded"`  // the indices taken once no job was left
	Errors     []string           `json:"errors"`     // the first unexpected errors, as text
}

// record is a job that ran, times on the clock; taken is NaN in a closed load.
type record struct {
	index                     int
	submitted, started, ended float64
	checksum                  uint64
	outcome                   int
	taken                     float64
}

// backgroundRecord is a background step that ended: its job, its place in the scenario, and
// its times.
type backgroundRecord struct {
	job, stage, step int
	handed, ended    float64
	checksum         uint64
	outcome          int
}

func (r record) MarshalJSON() ([]byte, error) {
	var taken any
	if !math.IsNaN(r.taken) {
		taken = r.taken
	}
	return json.Marshal([]any{r.index, r.submitted, r.started, r.ended,
		strconv.FormatUint(r.checksum, 10), r.outcome, taken})
}

func (s backgroundRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{s.job, s.stage, s.step, s.handed, s.ended,
		strconv.FormatUint(s.checksum, 10), s.outcome})
}

func newTally() *tally {
	return &tally{Records: []record{}, Background: []backgroundRecord{}, HandedOff: []int{},
		Retried: []int{}, Sold: []int{}, Discarded: []int{}, Errors: []string{}}
}

func (t *tally) add(r record) {
	t.mu.Lock()
	t.Records = append(t.Records, r)
	t.mu.Unlock()
}

func (t *tally) addStep(s backgroundRecord) {
	t.mu.Lock()
	t.Background = append(t.Background, s)
	t.mu.Unlock()
}

func (t *tally) handOff(job int) {
	t.mu.Lock()
	t.HandedOff = append(t.HandedOff, job)
	t.mu.Unlock()
}

func (t *tally) retry(job int) {
	t.mu.Lock()
	t.Retried = append(t.Retried, job)
	t.mu.Unlock()
}

func (t *tally) sell(product int) {
	t.mu.Lock()
	t.Sold = append(t.Sold, product)
	t.mu.Unlock()
}

func (t *tally) discard(index int) {
	t.mu.Lock()
	t.Discarded = append(t.Discarded, index)
	t.mu.Unlock()
}

// outcome is how a job or step that returned err ended; an unexpected error is kept as text.
func (t *tally) outcome(err error) int {
	outcome := outcomeOf(err)
	if outcome == outcomeLost {
		t.mu.Lock()
		if len(t.Errors) < keptErrors {
			t.Errors = append(t.Errors, err.Error())
		}
		t.mu.Unlock()
	}
	return outcome
}

func outcomeOf(err error) int {
	switch err {
	case errFailed:
		return outcomeFailed
	case errTimedOut:
		return outcomeTimedOut
	}
	return outcomeLost
}

// Job i's draws (models/workload.py's Stream, draw_job and _draw_action).

type attempt struct {
	seconds  float64 // how long the service takes to answer
	fails    bool    // whether the answer is an error
	backoffS float64 // the pause before this try (0 for the first)
}

// action is one drawn step of a job: an I/O wait (io) or a piece of CPU work.
type action struct {
	job, stage, step int  // the job's index; the step's place in the scenario
	product          int  // the product whose stock the step updates under its lock; -1: none
	background       bool // handed off: the job does not wait for it
	io               bool
	attempts         []attempt     // io: the tries, in order, until one succeeds
	timeout          time.Duration // io: each try's; 0: none
	requestBytes     int
	responseBytes    int
	kind             string // cpu: python, native or json
	units            int64
	seed             uint64
}

type job struct {
	index  int
	stages [][]action
}

const golden = 0x9E3779B97F4A7C15 // SplitMix64's increment: 2^64 over the golden ratio, odd

// stream is the random numbers of one job: SplitMix64 from its seed and index.
type stream struct{ state uint64 }

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func newStream(seed uint64, index int) *stream {
	return &stream{mix64(mix64(seed) ^ uint64(index))}
}

func (s *stream) bits() uint64 {
	s.state += golden
	return mix64(s.state)
}

func (s *stream) random() float64 {
	return float64(s.bits()>>11) * 0x1p-53
}

// choice is an index drawn in proportion to its weight, from the weights' running sums: the
// first sum above a uniform share of the total (Python's bisect_right, at most the last).
func (s *stream) choice(cumWeights []float64) int {
	x := s.random() * cumWeights[len(cumWeights)-1]
	return sort.Search(len(cumWeights)-1, func(k int) bool { return cumWeights[k] > x })
}

const z99 = 2.3263478740408408 // the standard normal's 99th percentile

// drawMs draws one duration in milliseconds.
func drawMs(d *dist, s *stream) float64 {
	switch {
	case d.Kind == "uniform":
		return d.LowMs + float64((d.HighMs-d.LowMs)*s.random())
	case d.Kind == "lognormal": // Box-Muller: the cosine of two uniforms
		mu, sigma := math.Log(d.P50Ms), math.Log(d.P99Ms/d.P50Ms)/z99
		radius := math.Sqrt(-2.0 * math.Log(1.0-s.random()))
		return math.Exp(mu + float64(sigma*radius*math.Cos(2.0*math.Pi*s.random())))
	case d.Kind == "constant" || d.MeanMs == 0:
		return d.MeanMs
	}
	return -math.Log(1.0-s.random()) / (1.0 / d.MeanMs)
}

// drawJob draws job `index`; the result depends only on (scenario, calibration, seed, index).
func drawJob(scenario [][]*stepSpec, cal calibration, seed uint64, index int) *job {
	rng := newStream(seed, index)
	j := &job{index, make([][]action, len(scenario))}
	for s, steps := range scenario {
		j.stages[s] = make([]action, len(steps))
		for k, st := range steps {
			j.stages[s][k] = drawAction(index, s, k, st, cal, rng)
		}
	}
	return j
}

func drawAction(index, stage, k int, st *stepSpec, cal calibration, rng *stream) action {
	a := action{job: index, stage: stage, step: k, product: -1, background: st.Background}
	if st.Lock != nil {
		a.product = rng.choice(st.popularity)
	}
	if st.Type == "io" {
		a.io, a.requestBytes, a.responseBytes = true, st.RequestBytes, st.ResponseBytes
		a.attempts = make([]attempt, st.Retries+1)
		for k := range a.attempts {
			a.attempts[k].seconds = drawMs(st.Wait, rng) / 1000.0
			a.attempts[k].fails = rng.random() < st.FailRate
			if k > 0 {
				a.attempts[k].backoffS = math.Ldexp(st.BackoffMs, k-1) / 1000.0
			}
		}
		if st.TimeoutMs != nil {
			a.timeout = duration(*st.TimeoutMs / 1000.0)
		}
		return a
	}
	rate := cal.NativeBlocksPerMs
	switch st.Kind {
	case "python":
		rate = cal.PythonIterationsPerMs
	case "json":
		rate = cal.JSONOrdersPerMs
	}
	a.kind = st.Kind
	a.units = int64(math.RoundToEven(drawMs(st.CPU, rng) * rate))
	a.seed = rng.bits()
	return a
}

// The CPU kernels (models/workload.py's burn_python, burn_native, burn_json) and checksums.

const (
	lcgA = 6364136223846793005 // Knuth's MMIX LCG
	lcgC = 1442695040888963407
)

// burnPython is the LCG's state after `iterations` steps from `seed`.
func burnPython(iterations int64, seed uint64) uint64 {
	x := seed
	for i := int64(0); i < iterations; i++ {
		x = x*lcgA + lcgC
	}
	return x
}

var nativeBlock = func() []byte { // 16 KiB: the bytes 0 to 255, 64 times
	block := make([]byte, 256*64)
	for i := range block {
		block[i] = byte(i)
	}
	return block
}()

// burnNative hashes `blocks` blocks; returns the first 8 bytes of the digest.
func burnNative(blocks int64) uint64 {
	digest := sha256.New()
	for i := int64(0); i < blocks; i++ {
		digest.Write(nativeBlock)
	}
	return binary.BigEndian.Uint64(digest.Sum(nil)[:8])
}

type customer struct {
	Email   string `json:"email"`
	Country string `json:"country"`
}

type item struct {
	SKU        string `json:"sku"`
	Quantity   uint64 `json:"quantity"`
	PriceCents uint64 `json:"price_cents"`
}

type order struct {
	ID       uint64   `json:"id"`
	Customer customer `json:"customer"`
	Currency string   `json:"currency"`
	Items    []item   `json:"items"`
}

const orderItems = 4

// receipt renders an order from a template whose every field is padded to its width.
func receipt(o *order) string {
	lines := make([]string, len(o.Items))
	cents := uint64(0)
	for k, it := range o.Items {
		cents += it.Quantity * it.PriceCents
		lines[k] = fmt.Sprintf("%02d x %s at %8.2f", it.Quantity, it.SKU, float64(it.PriceCents)/100)
	}
	return fmt.Sprintf("Order %020d\nCustomer %s\n%s\nTotal %10.2f %s\n",
		o.ID, o.Customer.Email, strings.Join(lines, "\n"), float64(cents)/100, o.Currency)
}

// receiptBytes is the length of every receipt: that of the all-zero order.
var receiptBytes = func() uint64 {
	zero := order{Customer: customer{Email: "c00000@example.com"}, Currency: "EUR"}
	for k := 0; k < orderItems; k++ {
		zero.Items = append(zero.Items, item{SKU: "SKU-00000", Quantity: 1})
	}
	return uint64(len(receipt(&zero)))
}()

// burnJSON is CPU work as a service does it: for each order, build it as structs, encode it as
// JSON and decode it, total it and render its receipt. The next order comes from the decoded
// id and the receipt's length, so the result is the LCG's state after `orders` steps, as
// burnPython's, and wrong if an order did not survive the round trip intact.
func burnJSON(orders int64, seed uint64) uint64 {
	x := seed
	for i := int64(0); i < orders; i++ {
		o := order{
			ID:       x,
			Customer: customer{Email: fmt.Sprintf("c%05d@example.com", x&0xFFFF), Country: "FR"},
			Currency: "EUR",
			Items:    make([]item, orderItems),
		}
		for k := range o.Items {
			shift := 16 * uint(k)
			o.Items[k] = item{
				SKU:        fmt.Sprintf("SKU-%05d", (x>>shift)&0xFFFF),
				Quantity:   1 + ((x >> (shift + 8)) & 3),
				PriceCents: 100 + ((x >> (shift + 4)) & 0x3FF),
			}
		}
		encoded, err := json.Marshal(&o)
		if err != nil {
			panic(err)
		}
		var decoded order
		if err := json.Unmarshal(encoded, &decoded); err != nil {
			panic(err)
		}
		x = decoded.ID*lcgA + lcgC + uint64(len(receipt(&decoded))) - receiptBytes
	}
	return x
}

// combine folds step results (in spec order) into one checksum.
func combine(values []uint64) uint64 {
	acc := uint64(0)
	for _, value := range values {
		acc = acc*1_000_003 ^ value
	}
	return acc
}

// The clock: CLOCK_MONOTONIC in seconds, as Python's time.perf_counter.

var clockBaseNs, clockStart = func() (int64, time.Time) {
	var ts syscall.Timespec
	const clockMonotonic = 1
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano(), time.Now()
}()

func now() float64 {
	return float64(clockBaseNs+int64(time.Since(clockStart))) / 1e9
}

func sleepUntil(s float64) {
	if wait := s - now(); wait > 0 {
		time.Sleep(duration(wait))
	}
}

func duration(seconds float64) time.Duration {
	return time.Duration(math.Round(seconds * 1e9))
}
