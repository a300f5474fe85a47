package orm

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNode is a connector that is up or down, and counts its connections.
type fakeNode struct {
	down   atomic.Bool
	dialed atomic.Int64
}

type fakeNodeConn struct{ driver.Conn }

func (c fakeNodeConn) Close() error { return nil }

var errNodeDown = errors.New("connect: connection refused")

func (n *fakeNode) Connect(context.Context) (driver.Conn, error) {
	n.dialed.Add(1)
	if n.down.Load() {
		return nil, errNodeDown
	}
	return fakeNodeConn{}, nil
}
func (n *fakeNode) Driver() driver.Driver { return nil }

func newFakeBalancer(n int) (*balancer, []*fakeNode) {
	b := &balancer{}
	fakes := make([]*fakeNode, n)
	for i := range fakes {
		fakes[i] = &fakeNode{}
		b.nodes = append(b.nodes, &node{c: fakes[i], label: "node"})
	}
	return b, fakes
}

// New connections go to the nodes in turn; a node that refuses is taken
// out, costs later connections nothing, and is put back by a background
// probe once it answers again.
func TestBalancerRoundRobinTakesOutAndPutsBack(t *testing.T) {
	b, fakes := newFakeBalancer(3)
	ctx := context.Background()
	for range 6 {
		if _, err := b.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range fakes {
		if f.dialed.Load() != 2 {
			t.Errorf("node %d dialled %d times, want 2", i, f.dialed.Load())
		}
	}

	fakes[1].down.Store(true)
	for range 30 {
		if _, err := b.Connect(ctx); err != nil {
			t.Fatalf("Connect with one node down: %v", err)
		}
	}
	if d := fakes[1].dialed.Load(); d > 4 { // 2 before, 1 refusal, maybe a probe
		t.Errorf("down node dialled %d times during 30 connections; want it skipped", d)
	}
	if up, _ := b.nodes[1].state(time.Now()); b.nodes[1].downs.Load() != 1 || up {
		t.Errorf("node 1: %d downs, up %v; want taken out once", b.nodes[1].downs.Load(), up)
	}

	fakes[1].down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for up, _ := b.nodes[1].state(time.Now()); !up; up, _ = b.nodes[1].state(time.Now()) {
		if time.Now().After(deadline) {
			t.Fatal("node 1 not put back within 5 s of answering again")
		}
		if _, err := b.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.nodes[1].ups.Load() != 1 {
		t.Errorf("node 1 put back %d times, want 1", b.nodes[1].ups.Load())
	}
}

// With every node down, Connect tries each and returns all their errors.
func TestBalancerAllNodesDownReportsEach(t *testing.T) {
	b, fakes := newFakeBalancer(2)
	for _, f := range fakes {
		f.down.Store(true)
	}
	for range 3 {
		_, err := b.Connect(context.Background())
		if !errors.Is(err, errNodeDown) {
			t.Fatalf("Connect = %v, want the nodes' errors", err)
		}
	}
	b.Close()
	for i, f := range fakes {
		if f.dialed.Load() < 3 {
			t.Errorf("node %d dialled %d times in 3 Connects with all nodes down; want each tried every time", i, f.dialed.Load())
		}
	}
}
