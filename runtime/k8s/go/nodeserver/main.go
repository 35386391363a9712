// Command nodeserver is the streaming half of serve-chaos's node agent: the kubelet's
// HTTPS endpoints that the API server proxies `kubectl exec`, `kubectl port-forward` and
// `kubectl logs` to (kubernetes pkg/kubelet/server/server.go: /exec, /portForward,
// /containerLogs, /healthz), served with the kubelet's own protocol handlers
// (k8s.io/kubelet/pkg/cri/streaming/{remotecommand,portforward}).
//
// It knows pods only through the JSON state files the Python agent writes (one per pod,
// <state-dir>/<namespace>_<pod>.json): the pod UID, and per container the PID of its main
// process, its environment, its cgroups and its log file. An exec joins the container the
// way a container runtime's does: its cgroups first, then its network and mount
// namespaces, its root and working directory (nsenter), with the container's environment.
// A port-forward dials localhost:<port> inside the pod's network namespace, as the CRI
// runtimes do (containerd's PortForward enters the sandbox's netns), so it never crosses
// the pod's eth0.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
)

// The kubelet's defaults (pkg/kubelet/apis/config/v1beta1/defaults.go StreamingConnectionIdleTimeout
// 4h; pkg/kubelet/server/server.go streamCreationTimeout 30 s).
const (
	idleTimeout           = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

type containerState struct {
	PID     int      `json:"pid"`
	Env     []string `json:"env"`
	Cgroups []string `json:"cgroups"`
	Log     string   `json:"log"`
	PrevLog string   `json:"previous_log"`
}

type podState struct {
	UID        string                    `json:"uid"`
	IP         string                    `json:"ip"`
	Netns      string                    `json:"netns"`
	Containers map[string]containerState `json:"containers"`
}

type server struct {
	stateDir string
}

func (s *server) pod(namespace, name string) (*podState, error) {
	raw, err := os.ReadFile(filepath.Join(s.stateDir, namespace+"_"+name+".json"))
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s does not exist on this node", namespace, name)
	}
	var st podState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("pod %s/%s: unreadable state: %v", namespace, name, err)
	}
	return &st, nil
}

// target is what an exec or port-forward request names: pod, container, and the pod's state.
type target struct {
	pod       *podState
	container string
}

// ExecInContainer runs cmd in the container: cgroups joined by a shell that then execs nsenter
// into the container's namespaces, root and working directory.
func (t *target) run(ctx context.Context, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool,
	resize <-chan remotecommand.TerminalSize) error {
	c, ok := t.pod.Containers[t.container]
	if !ok || c.PID <= 0 {
		return fmt.Errorf("container %q is not running", t.container)
	}
	if len(cmd) == 0 {
		return errors.New("no command")
	}
	pid := strconv.Itoa(c.PID)
	join := `for f in $SERVE_CHAOS_EXEC_CGROUPS; do echo $$ > "$f" || exit 126; done; unset SERVE_CHAOS_EXEC_CGROUPS; exec "$@"`
	args := append([]string{"-c", join, "exec", "nsenter", "--target", pid, "--net", "--mount", "--uts", "--pid", "--root", "--wd", "--"}, cmd...)
	proc := exec.CommandContext(ctx, "/bin/sh", args...)
	proc.Env = append(append([]string{}, c.Env...), "SERVE_CHAOS_EXEC_CGROUPS="+strings.Join(c.Cgroups, " "))
	if tty {
		return runTTY(proc, in, out, resize)
	}
	if in != nil {
		proc.Stdin = in
	}
	proc.Stdout, proc.Stderr = out, errw
	return exitError(proc.Run())
}

func runTTY(proc *exec.Cmd, in io.Reader, out io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
	term, err := pty.Start(proc)
	if err != nil {
		return err
	}
	defer term.Close()
	go func() {
		for size := range resize {
			_ = pty.Setsize(term, &pty.Winsize{Rows: size.Height, Cols: size.Width})
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(term, in) }()
	}
	_, _ = io.Copy(out, term)
	return exitError(proc.Wait())
}

// exitError turns an exit status into the error the remotecommand server reports as the
// command's exit code (k8s.io/utils/exec.ExitError, as the kubelet's runtimes return it).
func exitError(err error) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return codeExitError{code: exitErr.ExitCode(), err: err}
	}
	return err
}

type codeExitError struct {
	code int
	err  error
}

func (e codeExitError) Error() string   { return e.err.Error() }
func (e codeExitError) String() string  { return e.err.Error() }
func (e codeExitError) Exited() bool    { return true }
func (e codeExitError) ExitStatus() int { return e.code }

type executor struct{ t *target }

func (e executor) ExecInContainer(ctx context.Context, _ string, _ types.UID, _ string, cmd []string, in io.Reader,
	out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return e.t.run(ctx, cmd, in, out, errw, tty, resize)
}

type forwarder struct{ pod *podState }

// PortForward dials localhost:port inside the pod's network namespace (containerd's sandbox
// PortForward does the same) and copies both ways until either side closes.
func (f forwarder) PortForward(ctx context.Context, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := dialInNetns(f.pod.Netns, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port-forward to %d: %v", port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); closeWrite(conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func closeWrite(conn net.Conn) {
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
}

// dialInNetns opens a TCP connection from inside the network namespace at path: the socket is
// created on an OS thread switched into that namespace, and keeps it after the thread leaves.
func dialInNetns(path, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked on purpose: it ends with this goroutine, so a thread whose
		// namespace could not be switched back is never reused.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// lookup resolves the {namespace}/{pod}[/{uid}] that parts start with (tail more parts follow),
// answering 404 itself when the path or the pod does not fit.
func (s *server) lookup(w http.ResponseWriter, req *http.Request, parts []string, tail int) (*podState, bool) {
	n := len(parts) - tail
	if n != 2 && n != 3 {
		http.NotFound(w, req)
		return nil, false
	}
	pod, err := s.pod(parts[0], parts[1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	if n == 3 && parts[2] != pod.UID {
		http.Error(w, "pod not found", http.StatusNotFound)
		return nil, false
	}
	return pod, true
}

// handleExec: /exec/{namespace}/{pod}[/{uid}]/{container}?command=...
func (s *server) handleExec(w http.ResponseWriter, req *http.Request, parts []string) {
	pod, ok := s.lookup(w, req, parts, 1)
	if !ok {
		return
	}
	opts, err := remotecommandserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	t := &target{pod: pod, container: parts[len(parts)-1]}
	remotecommandserver.ServeExec(w, req, executor{t}, "", "", t.container, cmd, opts, idleTimeout,
		streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

// handlePortForward: /portForward/{namespace}/{pod}[/{uid}]
func (s *server) handlePortForward(w http.ResponseWriter, req *http.Request, parts []string) {
	pod, ok := s.lookup(w, req, parts, 0)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, forwarder{pod}, parts[1], types.UID(pod.UID), opts, idleTimeout,
		streamCreationTimeout, portforward.SupportedProtocols)
}

// handleLogs serves a container's log (pkg/kubelet/server/server.go getContainerLogs): the
// current or previous incarnation, tailLines, and follow (polling the file until the client goes).
func (s *server) handleLogs(w http.ResponseWriter, req *http.Request, parts []string) {
	if len(parts) != 3 {
		http.NotFound(w, req)
		return
	}
	pod, err := s.pod(parts[0], parts[1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	c, ok := pod.Containers[parts[2]]
	if !ok {
		http.Error(w, fmt.Sprintf("container %q is not in pod %s", parts[2], parts[1]), http.StatusNotFound)
		return
	}
	q := req.URL.Query()
	path := c.Log
	if q.Get("previous") == "true" {
		path = c.PrevLog
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "no log for this container", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		writeTail(w, f, n)
	} else {
		_, _ = io.Copy(w, f)
	}
	if q.Get("follow") != "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	reader := bufio.NewReader(f)
	for {
		chunk, err := reader.ReadBytes('\n')
		if len(chunk) > 0 {
			if _, werr := w.Write(chunk); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			select {
			case <-req.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		} else if err != nil {
			return
		}
	}
}

func writeTail(w io.Writer, f *os.File, n int) {
	data, err := io.ReadAll(f)
	if err != nil {
		return
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	_, _ = io.WriteString(w, strings.Join(lines, ""))
}

func (s *server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path := strings.Trim(req.URL.Path, "/")
	parts := strings.Split(path, "/")
	switch parts[0] {
	case "healthz":
		_, _ = io.WriteString(w, "ok")
	case "exec":
		s.handleExec(w, req, parts[1:])
	case "portForward":
		s.handlePortForward(w, req, parts[1:])
	case "containerLogs":
		s.handleLogs(w, req, parts[1:])
	default:
		http.NotFound(w, req)
	}
}

func main() {
	addr := flag.String("address", "", "host:port to serve on (the node's InternalIP and its kubelet port)")
	stateDir := flag.String("state-dir", "", "directory of the agent's pod state files")
	certFile := flag.String("tls-cert-file", "", "serving certificate")
	keyFile := flag.String("tls-private-key-file", "", "serving key")
	clientCA := flag.String("client-ca-file", "", "CA that signs the API server's client certificate")
	flag.Parse()
	if *addr == "" || *stateDir == "" || *certFile == "" || *keyFile == "" || *clientCA == "" {
		log.Fatal("nodeserver: --address, --state-dir, --tls-cert-file, --tls-private-key-file and --client-ca-file are required")
	}
	caPEM, err := os.ReadFile(*clientCA)
	if err != nil {
		log.Fatalf("nodeserver: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		log.Fatalf("nodeserver: no certificate in %s", *clientCA)
	}
	// Only a client the cluster's CA signed (the API server) may exec or forward: the kubelet's
	// x509 authentication (--client-ca-file).
	srv := &http.Server{
		Addr:      *addr,
		Handler:   &server{stateDir: *stateDir},
		TLSConfig: &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	}
	log.Printf("nodeserver: serving on %s", *addr)
	log.Fatal(srv.ListenAndServeTLS(*certFile, *keyFile))
}
