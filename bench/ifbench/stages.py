#!/usr/bin/env python3
"""stages.py PERFTXT PID...: where the microseconds of a ping through a
userspace switch go, stage by stage, median over the pings traced.

PERFTXT is `perf script -F comm,tid,cpu,time,event,trace` output of a
system-wide `perf record -e sched:sched_switch,sched:sched_wakeup,
raw_syscalls:sys_enter,raw_syscalls:sys_exit` taken while `ping` ran
through the switch; PID is the switch process (its threads are looked up
in /proc, so it must still run). Each ping is cut from ping's sendto(2) to
its recvmsg(2) returning the reply; in between, the switch's first system
call return is its wake-up, its first two write(2)s are the request to B
and the reply to A, and the read(2)s before them took the frames.
bench/ifbench/run.sh -T does all of this for each switch setup.
"""
import sys, re, statistics as st, os
path = sys.argv[1]; pids = set()
for p in sys.argv[2:]:
    pids |= {int(t) for t in os.listdir(f"/proc/{p}/task")}
ev = []
rx = re.compile(r'^\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
for l in open(path):
    m = rx.match(l)
    if not m: continue
    comm, tid, cpu, t, e, rest = m.groups()
    ev.append((float(t)*1e6, comm, int(tid), int(cpu), e, rest))
# split per ping: from ping's sendto (NR 44 enter) to ping's recvmsg exit with 84
pings = []; cur = None
for x in ev:
    t, comm, tid, cpu, e, rest = x
    if comm == 'ping' and e == 'raw_syscalls:sys_enter' and rest.startswith('NR 44 '):
        cur = [x]; continue
    if cur is None: continue
    cur.append(x)
    if comm == 'ping' and e == 'raw_syscalls:sys_exit' and rest.startswith('NR 47 = 84'):
        pings.append(cur); cur = None
stages = {}
def add(k, v): stages.setdefault(k, []).append(v)
for p in pings:
    t0 = p[0][0]
    marks = []
    sw = [x for x in p if x[2] in pids]
    # first switch syscall exit after t0 = wake
    sendexit = next(x[0] for x in p if x[1]=='ping' and x[4]=='raw_syscalls:sys_exit' and x[5].startswith('NR 44'))
    wake = next((x[0] for x in sw if x[4]=='raw_syscalls:sys_exit'), None)
    reads = [x for x in sw if x[4]=='raw_syscalls:sys_enter' and re.match(r'NR 0 ', x[5])]
    writes_en = [x for x in sw if x[4]=='raw_syscalls:sys_enter' and re.match(r'NR 1 ', x[5])]
    writes_ex = [x for x in sw if x[4]=='raw_syscalls:sys_exit' and re.match(r'NR 1 = ', x[5])]
    if wake is None or len(writes_en) < 2 or len(writes_ex) < 2: continue
    r1 = reads[0][0]
    w1, w1x, w2, w2x = writes_en[0][0], writes_ex[0][0], writes_en[1][0], writes_ex[1][0]
    # read that fed the second write: last read enter before w2
    r2 = max(x[0] for x in reads if x[0] < w2)
    end = p[-1][0]
    add('1 ping sendto (to frame queued + wake)', sendexit - t0)
    add('2 switch thread running (wake->first syscall exit)', wake - sendexit)
    add('3 wake -> read(A) enter', r1 - wake)
    add('4 read(A) enter -> write(B) enter (read + forward)', w1 - r1)
    add('5 write(B): B stack + reply queued', w1x - w1)
    add('6 write(B) exit -> read(B) enter', r2 - w1x)
    add('7 read(B) enter -> write(A) enter', w2 - r2)
    add('8 write(A): A stack, ping woken', w2x - w2)
    add('9 write(A) exit -> ping back from recvmsg', end - w2x)
    add('total', end - t0)
print(f"{len(pings)} pings traced")
for k in sorted(stages):
    v = stages[k]
    print(f"{k:55s} median {st.median(v):6.1f} us  p25 {sorted(v)[len(v)//4]:6.1f}  p75 {sorted(v)[3*len(v)//4]:6.1f}")
