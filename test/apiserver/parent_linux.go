package main

import (
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// exitWithParent makes the death of the process that spawned us (a crashed or
// killed test runner) shut us down cleanly instead of leaking a cluster.
//
// The kernel sends the parent-death signal each time we are reparented, i.e.
// once per exiting thread of a multi-threaded parent such as node. A repeated
// SIGTERM makes the apiserver's handler exit(1) mid-shutdown, so ask for
// SIGHUP and turn any number of them into a single SIGTERM.
func exitWithParent() {
	hup := make(chan os.Signal, 8)
	signal.Notify(hup, syscall.SIGHUP)
	ppid := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGHUP), 0); errno != 0 {
		log.Printf("prctl(PR_SET_PDEATHSIG): %v", errno)
	}
	// The parent may have died before prctl took effect.
	if os.Getppid() != ppid {
		log.Print("parent exited during startup")
		os.Exit(1)
	}
	var once sync.Once
	go func() {
		for range hup {
			once.Do(func() {
				log.Print("parent exited or SIGHUP; shutting down")
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			})
		}
	}()
}
