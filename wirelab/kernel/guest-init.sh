#!/bin/sh
# wirelab's init (PID 1) inside a User-Mode Linux guest.
#
# The guest's root is the host's own filesystem, mounted read-only over hostfs.
# Here we put a copy-on-write overlay (tmpfs upper) on top of it and pivot into
# that, so a write to /etc, /usr or /var inside the guest never reaches the
# host.  Only two host directories are written through: the project directory
# (so results/ lands on the host) and the per-boot control directory that
# carries the command in and its exit status out.
#
# The host side (wirelab/uml/__init__.py) passes WIRELAB_CTL on the kernel
# command line; $WIRELAB_CTL/boot.env sets PROJECT, INTERACTIVE and MODULES.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

fail() {
    echo "wirelab-uml: $*" > /dev/console
    echo o > /proc/sysrq-trigger
    exit 1
}

# A host directory through hostfs.  The host path is the mount's whole data string, which
# only the classic mount(2) call passes as it is: util-linux 2.39+ (Debian 13) goes
# through the new mount API by default, where hostfs wants "hostfs=PATH" and rejects the
# bare path; LIBMOUNT_FORCE_MOUNT2 makes it use mount(2), which every kernel accepts
# (util-linux 2.38 ignores the variable and uses mount(2) anyway).
hostfs_mount() {
    LIBMOUNT_FORCE_MOUNT2=always mount -t hostfs none "$1" -o "$2"
}

mount -t proc proc /proc || fail "cannot mount /proc"
# Read the boot settings before /tmp (where the control directory lives on
# the host) is covered by the guest's own tmpfs.
. "$WIRELAB_CTL/boot.env" || fail "cannot read $WIRELAB_CTL/boot.env"
REL=$(uname -r)
MODTREE=${MODULE_ROOT:-/usr/lib/uml/modules}/$REL
[ -d "$MODTREE" ] || fail "no module tree $MODTREE for guest kernel $REL (is user-mode-linux installed?)"
mount -t tmpfs -o mode=0755,size=${WIRELAB_OVERLAY_SIZE:-50%} tmpfs /tmp || fail "cannot mount tmpfs"
# The module tree through hostfs (a host path), never a symlink: a tree under /tmp (a
# project there, with its fetched kernels in build/) is hidden by the guest's own /tmp.
mkdir -p /tmp/mods/lib/modules/"$REL"
hostfs_mount /tmp/mods/lib/modules/"$REL" "$MODTREE" || fail "cannot mount the module tree $MODTREE"
modprobe -d /tmp/mods overlay || fail "cannot load the overlay module from $MODTREE"

N=/tmp/root
mkdir -p /tmp/ovl/upper /tmp/ovl/work $N
mount -t overlay overlay -o lowerdir=/,upperdir=/tmp/ovl/upper,workdir=/tmp/ovl/work $N \
    || fail "cannot mount the copy-on-write overlay"

mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
# the labs' memory and task caps (wirelab/lab/cgroup.py); a kernel without cgroup2 runs them uncapped
mount -t cgroup2 cgroup2 $N/sys/fs/cgroup 2>/dev/null || true
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $N/dev/pts
mount -t tmpfs tmpfs $N/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $N/run
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mkdir -p $N/run/lock $N/run/netns $N/run/openvswitch $N/run/wirelab-ctl
# Open vSwitch keeps its database in /etc/openvswitch and logs in /var/log:
# both are private to the guest through the overlay; start from an empty db.
rm -f $N/etc/openvswitch/conf.db $N/etc/openvswitch/.conf.db.~lock~ 2>/dev/null
hostfs_mount $N/run/wirelab-ctl "$WIRELAB_CTL" || fail "cannot mount the control directory"
if [ -n "$PROJECT" ]; then
    # (A project under /tmp has no mount point in the guest's fresh /tmp.)
    mkdir -p "$N$PROJECT"
    hostfs_mount "$N$PROJECT" "$PROJECT" || fail "cannot mount the project directory $PROJECT"
fi
# Other directories the host asked to see written through (a results directory
# outside the project), one absolute path a line; then folders the command only
# reads that the guest's fresh /tmp hides (a virtualenv or an experiment under /tmp),
# mounted and made read-only.
if [ -f "$N/run/wirelab-ctl/rw_dirs" ]; then
    while IFS= read -r dir; do
        [ -n "$dir" ] || continue
        mkdir -p "$N$dir"
        hostfs_mount "$N$dir" "$dir" || fail "cannot mount $dir"
    done < "$N/run/wirelab-ctl/rw_dirs"
fi
if [ -f "$N/run/wirelab-ctl/ro_dirs" ]; then
    while IFS= read -r dir; do
        [ -n "$dir" ] || continue
        mkdir -p "$N$dir"
        hostfs_mount "$N$dir" "$dir" || fail "cannot mount $dir"
        mount -o remount,ro "$N$dir" || fail "cannot make $dir read-only"
    done < "$N/run/wirelab-ctl/ro_dirs"
fi
# Modules from the UML tree that matches this kernel, where modprobe and the
# kernel's own autoloader look for them.
rm -rf "$N/lib/modules/$REL" 2>/dev/null
mkdir -p "$N/lib/modules/$REL"
hostfs_mount "$N/lib/modules/$REL" "$MODTREE" || fail "cannot mount the module tree $MODTREE"

cd $N || fail "cannot enter the overlay"
mkdir -p .oldroot
pivot_root . .oldroot || fail "pivot_root failed"
cd /
umount -l /.oldroot 2>/dev/null

# Load what labs use up front: one process instead of one per module.
[ -n "$MODULES" ] && modprobe -a $MODULES 2>/dev/null
hostname wirelab-uml 2>/dev/null

CTL=/run/wirelab-ctl
echo started > $CTL/state
# The host's signals and terminal events arrive as lines on tty3, a pipe from the host
# (a blocking read: no polling): INT (the host's SIGINT or SIGTERM) is passed on to the
# command's session as SIGINT, so the command tears its lab down and records that it was
# interrupted before the guest halts; "WINCH rows cols" resizes the terminal (the kernel
# then signals its foreground process group).  The command runs in the foreground: a
# background one would start with SIGINT ignored (POSIX, for asynchronous lists without
# job control), and so would Python.
watch() {
    while read -r what a b; do
        case $what in
            INT) kill -INT -"$(cat $CTL/pid)" ;;
            WINCH) stty -F /dev/tty1 rows "$a" cols "$b" ;;
        esac
    done < /dev/tty3
}
if [ "$INTERACTIVE" = 1 ]; then
    # A real terminal: the host's is raw, this one does the line editing, echo, Ctrl-C
    # (as SIGINT to the foreground job) and CR-LF; it is the command's controlling
    # terminal, on all three standard streams (job control reads stderr's).
    stty -F /dev/tty1 sane rows "${ROWS:-24}" cols "${COLS:-80}" 2>/dev/null
    watch 2>/dev/null &
    WATCH=$!
    TERM=${TERM:-xterm} setsid -c -w /bin/sh $CTL/cmd.sh < /dev/tty1 > /dev/tty1 2>&1
else
    stty -F /dev/tty1 raw -echo 2>/dev/null
    stty -F /dev/tty2 raw -echo 2>/dev/null
    watch 2>/dev/null &
    WATCH=$!
    setsid -w /bin/sh $CTL/cmd.sh < /dev/null > /dev/tty1 2> /dev/tty2
fi
echo $? > $CTL/rc
kill $WATCH 2>/dev/null
sync
echo o > /proc/sysrq-trigger
poweroff -f
