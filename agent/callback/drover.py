# drover.py: the Ansible stdout callback plugin drover-agent enables for every job
# (ANSIBLE_STDOUT_CALLBACK=drover, ANSIBLE_CALLBACK_PLUGINS=<share_dir>/callback).
#
# It keeps the default callback's human output on stdout and, for every v2_* callback, appends
# one ansible-runner/AWX compatible event (one JSON object per line) to $DROVER_EVENTS_FILE:
# event, uuid, counter (1, 2, 3 ...), parent_uuid, created, pid, stdout (the text the default
# callback printed for it), start_line, end_line, runner_ident, event_data. Text printed outside
# a callback (warnings, deprecations, verbose output) becomes "warning"/"deprecated"/"verbose"/
# "error" events. Writing never raises: a failure is reported once on stderr and the playbook
# continues.
# (c) drover authors; GPL-3.0-or-later like Ansible's own callback plugins.

from __future__ import annotations

DOCUMENTATION = '''
    name: drover
    type: stdout
    short_description: default output plus drover (ansible-runner compatible) job events
    description:
      - Prints what the default callback prints and writes one JSON event per callback
        to the file named by $DROVER_EVENTS_FILE.
    extends_documentation_fragment:
      - default_callback
      - result_format_callback
    requirements:
      - set as stdout callback in configuration
'''

import datetime
import json
import os
import sys
import threading
import time
import uuid

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallbackModule

_EVENT_KINDS = ('warning', 'deprecated', 'verbose', 'error')


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _strip_facts(res):
    """A shallow copy of a module result without ansible_facts.ansible_env (may hold secrets)."""
    if not isinstance(res, dict):
        return res
    facts = res.get('ansible_facts')
    if isinstance(facts, dict) and 'ansible_env' in facts:
        res = dict(res)
        res['ansible_facts'] = dict((k, v) for k, v in facts.items() if k != 'ansible_env')
    return res


class CallbackModule(DefaultCallbackModule):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'drover'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._drover_pid = os.getpid()
        self._drover_lock = threading.RLock()
        self._drover_tls = threading.local()
        self._drover_fd = None
        self._drover_failed = False
        self._drover_counter = 0
        self._drover_line = 0
        self._drover_ident = os.environ.get('DROVER_JOB_ID', '')
        self._drover_path = os.environ.get('DROVER_EVENTS_FILE')
        self._drover_uuid_seen = {}
        self._drover_task_uuids = {}
        self._drover_task_start = {}
        self._drover_playbook = ''
        self._drover_playbook_uuid = ''
        self._drover_play = None
        self._drover_play_uuid = ''
        self._drover_task = None
        self._drover_task_uuid = ''
        self._drover_patch_display()

    # ---------------- output capture ----------------
    def _drover_patch_display(self):
        disp = self._display
        orig_display = disp.display
        cb = self

        def display(msg, color=None, stderr=False, screen_only=False, log_only=False, newline=True):
            ret = orig_display(msg, color=color, stderr=stderr, screen_only=screen_only,
                               log_only=log_only, newline=newline)
            try:
                cb._drover_on_display(msg, stderr, log_only, newline)
            except Exception:
                pass
            return ret

        def wrap_kind(name, kind):
            orig = getattr(disp, name, None)
            if orig is None:
                return

            def wrapper(*args, **kwargs):
                tls = cb._drover_tls
                prev = getattr(tls, 'kind', None)
                tls.kind = kind
                try:
                    return orig(*args, **kwargs)
                finally:
                    tls.kind = prev
            setattr(disp, name, wrapper)

        disp.display = display
        wrap_kind('warning', 'warning')
        wrap_kind('deprecated', 'deprecated')
        wrap_kind('error', 'error')
        wrap_kind('verbose', 'verbose')

    def _drover_on_display(self, msg, stderr, log_only, newline):
        if log_only or os.getpid() != self._drover_pid or getattr(self._display, '_final_q', None):
            return
        msg = msg if isinstance(msg, str) else str(msg)
        text = msg[:-1] if msg.endswith('\n') else msg
        text += '\n'
        buf = getattr(self._drover_tls, 'capture', None)
        if buf is not None:
            if not stderr:
                buf.append(text)
            return
        # printed outside a callback: an event of its own
        kind = getattr(self._drover_tls, 'kind', None) or ('error' if stderr else 'verbose')
        with self._drover_lock:
            start = self._drover_line
            if not stderr:
                self._drover_line += text.count('\n')
            ev = {}
            if kind == 'verbose':
                ev['verbosity'] = self._display.verbosity
            self._drover_emit(kind, {}, text[:-1], start, self._drover_line,
                              parent=self._drover_task_uuid or self._drover_play_uuid or self._drover_playbook_uuid,
                              extra=ev)

    # ---------------- event writing ----------------
    def _drover_open(self):
        if self._drover_fd is not None or self._drover_failed:
            return self._drover_fd
        if not self._drover_path:
            self._drover_report('DROVER_EVENTS_FILE is not set; no events are recorded')
            return None
        try:
            self._drover_fd = os.open(self._drover_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            self._drover_report('cannot open %s: %s' % (self._drover_path, e))
        return self._drover_fd

    def _drover_stop(self):
        self._drover_failed = True
        if self._drover_fd is not None:
            try:
                os.close(self._drover_fd)
            except OSError:
                pass
            self._drover_fd = None

    def _drover_report(self, what):
        if self._drover_failed:
            return
        self._drover_failed = True
        try:
            sys.stderr.write('[drover] event recording failed, the playbook continues: %s\n' % what)
            sys.stderr.flush()
        except Exception:
            pass

    def _drover_dumps(self, ev):
        try:
            return json.dumps(ev, ensure_ascii=False, separators=(',', ':'), default=str, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            ed = dict(ev.get('event_data') or {})
            if 'res' in ed:
                ed['res'] = {'_drover_unserializable': True}
            ev = dict(ev, event_data=ed)
            try:
                return json.dumps(ev, ensure_ascii=False, separators=(',', ':'), default=str, allow_nan=False)
            except Exception:
                return None

    def _drover_emit(self, event, event_data, stdout, start_line, end_line, parent='', uid=None, extra=None):
        """Append one event line. Called with the lock held."""
        try:
            fd = self._drover_open()
            if fd is None:
                return
            data = {
                'playbook': self._drover_playbook,
                'playbook_uuid': self._drover_playbook_uuid,
            }
            data.update(event_data)
            ev = {
                'event': event,
                'uuid': uid or str(uuid.uuid4()),
                'counter': self._drover_counter + 1,
                'parent_uuid': parent or '',
                'created': _now_iso(),
                'pid': os.getpid(),
                'stdout': stdout,
                'start_line': start_line,
                'end_line': end_line,
                'runner_ident': self._drover_ident,
                'event_data': data,
            }
            if extra:
                ev.update(extra)
            line = self._drover_dumps(ev)
            if line is None:
                self._drover_report('event %s could not be serialized' % event)
                return
            b = (line + '\n').encode('utf-8', 'replace')
            written = 0
            try:
                while written < len(b):
                    written += os.write(fd, b[written:])
            except OSError:
                if written:
                    # terminate the partial line: the agent replaces it by a placeholder event
                    try:
                        os.write(fd, b'\n')
                        self._drover_counter += 1
                    except OSError:
                        pass
                raise
            self._drover_counter += 1
        except Exception as e:      # never break the playbook
            # stop recording: the events file stays a clean, gapless prefix
            self._drover_report('%s: %s' % (type(e).__name__, e))
            self._drover_stop()

    def _drover_event(self, event, method, args, kwargs, event_data, parent='', uid=None):
        """Run the default callback's method capturing its output, then emit the event."""
        with self._drover_lock:
            tls = self._drover_tls
            prev = getattr(tls, 'capture', None)
            tls.capture = []
            try:
                if method is not None:
                    return method(*args, **kwargs)
            finally:
                text = ''.join(tls.capture)
                tls.capture = prev
                start = self._drover_line
                self._drover_line += text.count('\n')
                if text.endswith('\n'):
                    text = text[:-1]
                self._drover_emit(event, event_data, text, start, self._drover_line, parent=parent, uid=uid)

    # ---------------- context ----------------
    def _drover_uuid(self, base):
        base = str(base)
        n = self._drover_uuid_seen.get(base, 0) + 1
        self._drover_uuid_seen[base] = n
        return base if n == 1 else '%s_%d' % (base, n)

    def _drover_play_data(self):
        play = self._drover_play
        if play is None:
            return {}
        hosts = getattr(play, 'hosts', None)
        if isinstance(hosts, (list, tuple)):
            pattern = ','.join(str(h) for h in hosts)
        else:
            pattern = str(hosts or '')
        return {'play': play.get_name(), 'play_uuid': self._drover_play_uuid, 'play_pattern': pattern}

    def _drover_task_data(self, task):
        d = self._drover_play_data()
        if task is None:
            return d
        try:
            if not task.no_log and C.DISPLAY_ARGS_TO_STDOUT:
                args = ', '.join('%s=%s' % a for a in task.args.items())
            else:
                args = ''
        except Exception:
            args = ''
        role = ''
        try:
            if getattr(task, '_role', None):
                role = task._role.get_name()
        except Exception:
            pass
        raw = str(getattr(task, '_uuid', ''))
        uid = self._drover_task_uuids.get(raw, raw)     # the latest start of this task (with _N)
        d.update({
            'task': task.get_name().strip(),
            'task_uuid': uid,
            'task_action': task.action,
            'resolved_action': getattr(task, 'resolved_action', None) or task.action,
            'task_args': args,
            'task_path': task.get_path() or '',
            'role': role,
        })
        return d

    def _drover_result_data(self, result, **more):
        task = result._task
        host = result._host
        d = self._drover_task_data(task)
        key = (host.get_name(), str(getattr(task, '_uuid', '')))
        start = self._drover_task_start.get(key)
        now = time.time()
        d.update({
            'host': host.get_name(),
            'remote_addr': getattr(host, 'address', None) or host.get_name(),
            'res': _strip_facts(result._result),
            'start': datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime(
                '%Y-%m-%dT%H:%M:%S.%fZ') if start else None,
            'end': _now_iso(),
            'duration': round(now - start, 6) if start else None,
            'event_loop': getattr(task, 'loop', None) if getattr(task, 'loop', None) else None,
        })
        d.update(more)
        return d

    def _drover_runner(self, event, method, result, args, kwargs, **more):
        data = self._drover_result_data(result, **more)
        parent = data.get('task_uuid') or self._drover_task_uuid
        return self._drover_event(event, method, args, kwargs, data, parent=parent)

    # ---------------- playbook / play / task ----------------
    def v2_playbook_on_start(self, playbook):
        fn = getattr(playbook, '_file_name', '') or ''
        try:
            rel = os.path.relpath(fn)
            self._drover_playbook = rel if not rel.startswith('..') else os.path.basename(fn)
        except Exception:
            self._drover_playbook = os.path.basename(fn)
        self._drover_playbook_uuid = str(uuid.uuid4())
        return self._drover_event('playbook_on_start', super(CallbackModule, self).v2_playbook_on_start,
                                  (playbook,), {}, {}, uid=self._drover_playbook_uuid)

    def v2_playbook_on_play_start(self, play):
        self._drover_play = play
        self._drover_play_uuid = self._drover_uuid(getattr(play, '_uuid', '') or uuid.uuid4())
        self._drover_task = None
        self._drover_task_uuid = ''
        return self._drover_event('playbook_on_play_start', super(CallbackModule, self).v2_playbook_on_play_start,
                                  (play,), {}, self._drover_play_data(),
                                  parent=self._drover_playbook_uuid, uid=self._drover_play_uuid)

    def _drover_task_event(self, event, method, task, args, kwargs, **more):
        self._drover_task = task
        self._drover_task_uuid = self._drover_uuid(getattr(task, '_uuid', '') or uuid.uuid4())
        self._drover_task_uuids[str(getattr(task, '_uuid', ''))] = self._drover_task_uuid
        data = self._drover_task_data(task)
        data.update(more)
        return self._drover_event(event, method, args, kwargs, data,
                                  parent=self._drover_play_uuid, uid=self._drover_task_uuid)

    def v2_playbook_on_task_start(self, task, is_conditional):
        return self._drover_task_event('playbook_on_task_start', super(CallbackModule, self).v2_playbook_on_task_start,
                                       task, (task, is_conditional), {}, is_conditional=bool(is_conditional))

    def v2_playbook_on_handler_task_start(self, task):
        return self._drover_task_event('playbook_on_task_start',
                                       super(CallbackModule, self).v2_playbook_on_handler_task_start,
                                       task, (task,), {}, is_conditional=True)

    def v2_playbook_on_cleanup_task_start(self, task):
        return self._drover_task_event('playbook_on_task_start',
                                       super(CallbackModule, self).v2_playbook_on_cleanup_task_start,
                                       task, (task,), {}, is_conditional=False)

    def v2_playbook_on_no_hosts_matched(self):
        return self._drover_event('playbook_on_no_hosts_matched',
                                  super(CallbackModule, self).v2_playbook_on_no_hosts_matched, (), {},
                                  self._drover_play_data(), parent=self._drover_play_uuid)

    def v2_playbook_on_no_hosts_remaining(self):
        return self._drover_event('playbook_on_no_hosts_remaining',
                                  super(CallbackModule, self).v2_playbook_on_no_hosts_remaining, (), {},
                                  self._drover_play_data(), parent=self._drover_play_uuid)

    def v2_playbook_on_notify(self, handler, host):
        data = self._drover_task_data(self._drover_task)
        data.update({'handler': handler.get_name(), 'host': host.get_name() if hasattr(host, 'get_name') else str(host)})
        return self._drover_event('playbook_on_notify', super(CallbackModule, self).v2_playbook_on_notify,
                                  (handler, host), {}, data, parent=self._drover_task_uuid or self._drover_play_uuid)

    def v2_playbook_on_include(self, included_file):
        data = self._drover_task_data(self._drover_task)
        try:
            data['included'] = included_file._filename
            data['hosts'] = [h.get_name() for h in included_file._hosts]
        except Exception:
            pass
        return self._drover_event('playbook_on_include', super(CallbackModule, self).v2_playbook_on_include,
                                  (included_file,), {}, data, parent=self._drover_task_uuid or self._drover_play_uuid)

    def v2_playbook_on_stats(self, stats):
        data = {}
        for k in ('changed', 'dark', 'failures', 'ignored', 'ok', 'processed', 'rescued', 'skipped'):
            v = getattr(stats, k, None) or {}
            data[k] = dict((h, n) for h, n in v.items() if n)
        custom = getattr(stats, 'custom', None) or {}
        data['artifact_data'] = custom.get('_run', {}) if isinstance(custom, dict) else {}
        return self._drover_event('playbook_on_stats', super(CallbackModule, self).v2_playbook_on_stats,
                                  (stats,), {}, data, parent=self._drover_playbook_uuid)

    # ---------------- runner events ----------------
    def v2_runner_on_start(self, host, task):
        key = (host.get_name(), str(getattr(task, '_uuid', '')))
        self._drover_task_start[key] = time.time()
        data = self._drover_task_data(task)
        data.update({'host': host.get_name(), 'remote_addr': getattr(host, 'address', None) or host.get_name()})
        parent = data.get('task_uuid') or self._drover_task_uuid
        return self._drover_event('runner_on_start', super(CallbackModule, self).v2_runner_on_start,
                                  (host, task), {}, data, parent=parent)

    def v2_runner_on_ok(self, result):
        return self._drover_runner('runner_on_ok', super(CallbackModule, self).v2_runner_on_ok, result, (result,), {})

    def v2_runner_on_failed(self, result, ignore_errors=False):
        return self._drover_runner('runner_on_failed', super(CallbackModule, self).v2_runner_on_failed, result,
                                   (result,), {'ignore_errors': ignore_errors}, ignore_errors=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        return self._drover_runner('runner_on_skipped', super(CallbackModule, self).v2_runner_on_skipped, result,
                                   (result,), {})

    def v2_runner_on_unreachable(self, result):
        return self._drover_runner('runner_on_unreachable', super(CallbackModule, self).v2_runner_on_unreachable,
                                   result, (result,), {})

    def v2_runner_item_on_ok(self, result):
        return self._drover_runner('runner_item_on_ok', super(CallbackModule, self).v2_runner_item_on_ok, result,
                                   (result,), {})

    def v2_runner_item_on_failed(self, result):
        return self._drover_runner('runner_item_on_failed', super(CallbackModule, self).v2_runner_item_on_failed,
                                   result, (result,), {})

    def v2_runner_item_on_skipped(self, result):
        return self._drover_runner('runner_item_on_skipped', super(CallbackModule, self).v2_runner_item_on_skipped,
                                   result, (result,), {})

    def v2_runner_retry(self, result):
        return self._drover_runner('runner_retry', super(CallbackModule, self).v2_runner_retry, result, (result,), {})

    def v2_runner_on_async_poll(self, result):
        return self._drover_runner('runner_on_async_poll', super(CallbackModule, self).v2_runner_on_async_poll,
                                   result, (result,), {})

    def v2_runner_on_async_ok(self, result):
        return self._drover_runner('runner_on_async_ok', super(CallbackModule, self).v2_runner_on_async_ok,
                                   result, (result,), {})

    def v2_runner_on_async_failed(self, result):
        return self._drover_runner('runner_on_async_failed', super(CallbackModule, self).v2_runner_on_async_failed,
                                   result, (result,), {})

    def v2_on_file_diff(self, result):
        return self._drover_runner('runner_on_file_diff', super(CallbackModule, self).v2_on_file_diff, result,
                                   (result,), {})
