/*
 * steptrace: runs a command under ptrace with a breakpoint on the first byte of
 * every function of one ELF file, in the command and in every process it forks
 * until they exec something else, and writes to OUT the functions that were
 * entered, one address (relative to the file's load base) a line in hex, in the
 * order they were first entered.
 *
 *   steptrace FILE STARTS OUT -- COMMAND [ARGS...]
 *
 * STARTS lists the function addresses (hex, relative to the load base, one a line;
 * symbolize.py --starts prints them from the link map). Each breakpoint is removed
 * when first hit, so a traced command runs at almost full speed.
 * Used by contrib/order/make-order.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct bp {
	uint64_t addr; /* relative to the load base */
	uint64_t word; /* the original 8 bytes at addr */
};
static struct bp *bps;
static size_t nbps;

static int cmp_bp(const void *a, const void *b)
{
	uint64_t x = ((const struct bp *)a)->addr, y = ((const struct bp *)b)->addr;
	return x < y ? -1 : x > y;
}

static struct bp *find_bp(uint64_t addr)
{
	struct bp key = { .addr = addr };
	return bsearch(&key, bps, nbps, sizeof *bps, cmp_bp);
}

/* The load base of FILE in process PID (the address of its first mapping minus that
 * mapping's file offset); 0 when FILE is not mapped. */
static uint64_t load_base(pid_t pid, const char *file)
{
	char path[64], line[4096];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	uint64_t base = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b, off;
		char name[4000] = "";
		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %3999[^\n]", &a, &b, &off, name) < 3)
			continue;
		if (strcmp(name, file) == 0 && (base == 0 || a - off < base))
			base = a - off;
	}
	fclose(f);
	return base;
}

/* Puts every original byte back in PID's memory (a process still running when the
 * command exits: the container's init waiting for `start`). */
static void disarm(pid_t pid, uint64_t base)
{
	for (size_t i = 0; i < nbps; i++)
		ptrace(PTRACE_POKETEXT, pid, (void *)(base + bps[i].addr), (void *)bps[i].word);
}

/* Writes an int3 at every function start not yet hit (in the first process only:
 * children inherit its memory, breakpoints and all). */
static int arm(pid_t pid, uint64_t base)
{
	for (size_t i = 0; i < nbps; i++) {
		errno = 0;
		long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)(base + bps[i].addr), 0);
		if (errno)
			return -1;
		bps[i].word = (uint64_t)w;
		long patched = (long)(((uint64_t)w & ~0xffULL) | 0xcc);
		if (ptrace(PTRACE_POKETEXT, pid, (void *)(base + bps[i].addr), (void *)patched) < 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: steptrace FILE STARTS OUT -- COMMAND [ARGS...]\n");
		return 2;
	}
	const char *file = argv[1];
	FILE *in = fopen(argv[2], "r");
	if (!in) {
		perror(argv[2]);
		return 1;
	}
	size_t cap = 1 << 16;
	bps = malloc(cap * sizeof *bps);
	unsigned long a;
	while (bps && fscanf(in, "%lx", &a) == 1) {
		if (nbps == cap)
			bps = realloc(bps, (cap *= 2) * sizeof *bps);
		if (bps)
			bps[nbps++] = (struct bp){ .addr = a };
	}
	fclose(in);
	if (!bps)
		return 1;
	qsort(bps, nbps, sizeof *bps, cmp_bp);
	FILE *out = fopen(argv[3], "w");
	if (!out) {
		perror(argv[3]);
		return 1;
	}

	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		execvp(argv[5], argv + 5);
		_exit(127);
	}
	int st;
	waitpid(child, &st, 0);
	ptrace(PTRACE_SETOPTIONS, child, 0,
	       PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC);
	ptrace(PTRACE_CONT, child, 0, 0);

	/* Per process: its load base (0: not running FILE), whether the fork event that
	 * made it was seen (known), whether its first stop came before that (held), and
	 * whether its first SIGSTOP is still to be swallowed (fresh). */
	enum { MAXPID = 1 << 22 };
	static uint64_t base[MAXPID];
	static char known[MAXPID], held[MAXPID], fresh[MAXPID], alive[MAXPID];
	int live = 1, rc = 0, started = 0;
	known[child] = 1;
	alive[child] = 1;
	while (live > 0) {
		pid_t p = waitpid(-1, &st, __WALL);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p >= MAXPID)
			continue;
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			alive[p] = 0;
			live--;
			if (p == child) {
				rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				/* The command is done; what it left running (a created
				 * container's init) goes on untraced, breakpoints removed. */
				for (pid_t q = 1; q < MAXPID && live > 0; q++) {
					if (!alive[q])
						continue;
					kill(q, SIGSTOP);
					int qs;
					while (waitpid(q, &qs, __WALL) == q && WIFSTOPPED(qs) &&
					       WSTOPSIG(qs) != SIGSTOP) {
						if (WSTOPSIG(qs) == SIGTRAP && (qs >> 16) == 0 && base[q]) {
							struct user_regs_struct r;
							if (ptrace(PTRACE_GETREGS, q, 0, &r) == 0 &&
							    find_bp(r.rip - 1 - base[q])) {
								r.rip -= 1;
								ptrace(PTRACE_SETREGS, q, 0, &r);
							}
						}
						ptrace(PTRACE_CONT, q, 0, 0);
					}
					if (base[q])
						disarm(q, base[q]);
					ptrace(PTRACE_DETACH, q, 0, 0);
					alive[q] = 0;
					live--;
				}
				break;
			}
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16, deliver = 0;
		if (!known[p]) {
			held[p] = 1;
			continue;
		}
		if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
			if (!started && p == child) {
				started = 1;
				base[p] = load_base(p, file);
				if (!base[p] || arm(p, base[p]) < 0) {
					fprintf(stderr, "steptrace: cannot set breakpoints in %s\n", file);
					return 1;
				}
			} else {
				/* Exec'd something else (the container's process): let it go. */
				ptrace(PTRACE_DETACH, p, 0, 0);
				alive[p] = 0;
				live--;
				continue;
			}
		} else if (sig == SIGTRAP &&
			   (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
			    event == PTRACE_EVENT_CLONE)) {
			unsigned long np;
			ptrace(PTRACE_GETEVENTMSG, p, 0, &np);
			if (np < MAXPID) {
				base[np] = base[p];
				known[np] = 1;
				alive[np] = 1;
				live++;
				if (held[np]) {
					held[np] = 0;
					ptrace(PTRACE_CONT, np, 0, 0);
				} else {
					fresh[np] = 1;
				}
			}
		} else if (sig == SIGSTOP && fresh[p]) {
			fresh[p] = 0;
		} else if (sig == SIGTRAP && event == 0 && base[p]) {
			struct user_regs_struct r;
			struct bp *b = NULL;
			if (ptrace(PTRACE_GETREGS, p, 0, &r) == 0)
				b = find_bp(r.rip - 1 - base[p]);
			if (b) {
				/* Our breakpoint: note the function, put its byte back, re-run it. */
				fprintf(out, "%lx\n", (unsigned long)b->addr);
				ptrace(PTRACE_POKETEXT, p, (void *)(base[p] + b->addr), (void *)b->word);
				r.rip -= 1;
				ptrace(PTRACE_SETREGS, p, 0, &r);
			} else {
				deliver = sig;
			}
		} else if (event != 0) {
		} else {
			deliver = sig;
		}
		ptrace(PTRACE_CONT, p, 0, deliver);
	}
	if (fclose(out) != 0) {
		perror(argv[3]);
		return 1;
	}
	return rc;
}
