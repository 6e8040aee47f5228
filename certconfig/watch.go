package certconfig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the watcher waits for a burst of file events to end
// before it reloads.
const DefaultDebounce = 150 * time.Millisecond

// Watcher reloads the configuration when the config file or any file it names
// changes. It watches folders, not files, because editors, deployment tools and
// Kubernetes replace files by renaming over them, which drops a watch on the file
// itself. It follows symbolic links, so a Kubernetes Secret's "..data" swap is seen.
type Watcher struct {
	reloader *Reloader
	debounce time.Duration
	fsw      *fsnotify.Watcher

	dirs  map[string]bool // folders watched now
	names map[string]bool // paths whose change matters: files and links on their way
}

// NewWatcher starts watching the folders of the files in force. debounce <= 0 means
// DefaultDebounce. Call Run to act on changes and Close to stop.
func NewWatcher(r *Reloader, debounce time.Duration) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch config files: %w", err)
	}
	w := &Watcher{reloader: r, debounce: debounce, fsw: fsw, dirs: map[string]bool{}}
	w.refresh()
	return w, nil
}

// Run reloads after each burst of relevant events until ctx is done. It returns
// nil when ctx ends, or the error that stopped the underlying watcher.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fsw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("config watcher stopped")
			}
			if w.relevant(ev) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("config watcher stopped")
			}
			w.reloader.logger().Warn("config watcher error; reloading to be safe", "error", err)
			timer.Reset(w.debounce)
		case <-timer.C:
			w.reloader.Reload("file change") //nolint:errcheck // logged and recorded by Reload
			w.refresh()
		}
	}
}

// Close stops watching. Run returns soon after.
func (w *Watcher) Close() error { return w.fsw.Close() }

func (w *Watcher) relevant(ev fsnotify.Event) bool {
	// A permission change alone counts too: it may make a key readable by others
	// (a warning) or unreadable (a rejected load, reported). A reload that finds
	// nothing changed keeps every certificate as it was, so touches cost little.
	return w.names[filepath.Clean(ev.Name)]
}

// refresh recomputes what to watch from the config file and the files of the
// snapshot in force. Paths are resolved again every time, since a symbolic link may
// now point elsewhere.
func (w *Watcher) refresh() {
	files := []string{w.reloader.Path}
	if s := w.reloader.Current.Load(); s != nil {
		files = append(files, s.Files...)
	}
	names := map[string]bool{}
	for _, f := range files {
		for _, p := range linkChain(f) {
			names[p] = true
		}
	}
	dirs := map[string]bool{}
	for p := range names {
		dirs[filepath.Dir(p)] = true
	}
	w.names = names
	w.syncDirs(dirs)
}

func (w *Watcher) syncDirs(want map[string]bool) {
	for d := range w.dirs {
		if !want[d] {
			_ = w.fsw.Remove(d) // the folder may already be gone
			delete(w.dirs, d)
		}
	}
	// Add every folder again, even one watched before: if it was deleted and made
	// anew, the old watch died with it.
	for d := range want {
		if err := w.fsw.Add(d); err != nil {
			if !w.dirs[d] {
				w.reloader.logger().Warn("cannot watch folder; changes there need SIGHUP",
					"folder", d, "error", err)
			}
			delete(w.dirs, d)
			continue
		}
		w.dirs[d] = true
	}
}

// linkChain returns path and, when path or one of its folders is a symbolic link,
// every link met while resolving it and the final target. A change to any of them
// changes what path reads. Each link returned lies in a folder free of links, so
// watching that folder sees the link being replaced.
func linkChain(path string) []string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return []string{path}
	}
	cur := filepath.Clean(abs)
	out := []string{cur}
	for range 32 { // bounded: a link loop must not hang the watcher
		next, link := resolveOnce(cur)
		if link == "" {
			break
		}
		out = append(out, link)
		cur = next
	}
	if cur != out[0] {
		out = append(out, cur)
	}
	return out
}

// resolveOnce replaces the first symbolic link found in path, walking from the root,
// by its target. It returns the new path and the link, or path and "" when path
// holds no link.
func resolveOnce(path string) (string, string) {
	vol := filepath.VolumeName(path)
	prefix := vol + string(filepath.Separator)
	parts := splitPath(path[len(vol):])
	for i := range parts {
		p := filepath.Join(prefix, filepath.Join(parts[:i+1]...))
		fi, err := os.Lstat(p)
		if err != nil {
			return path, ""
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(p)
		if err != nil {
			return path, ""
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		return filepath.Join(append([]string{target}, parts[i+1:]...)...), p
	}
	return path, ""
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(filepath.ToSlash(p), "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}
