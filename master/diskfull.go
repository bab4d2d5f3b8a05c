package master

import "log/slog"

// diskFullLogger reports on the master's own log when its data dir fills up and when Raft
// writes again (raft.Config.OnDiskFull). Raft's own log file lives in that data dir, so
// without this a full disk would go unreported exactly where an operator looks.
func diskFullLogger(log *slog.Logger) func(full bool, err error) {
	return func(full bool, err error) {
		if full {
			log.Error("data dir full: this master cannot write its Raft log; it has stepped down if it led, "+
				"refuses linearizable reads and cannot follow the leader until space is freed "+
				"(writes sent to it still reach the leader); it resumes by itself once space is freed",
				"error", err)
			return
		}
		log.Info("data dir writable again: this master is catching up with the leader")
	}
}
