// The event debugger page of segment_webhook's admin listener: polls /api/recent every second for the events
// and dead letters stored since the last answer, and keeps the lists, the sources' counters and the details
// panel up to date without reloading. Everything that comes from the server is put into the page with
// textContent, never parsed as HTML, so no event can inject markup or script.
'use strict';

const POLL_MS = 1000;
const MAX_ROWS = 200;

const state = {
    afterEvent: 0,
    afterRejected: 0,
    source: '',
    paused: false,
    sourceNames: new Map(), // id → name
    shownEvents: 0,
    shownRejected: 0,
    selectedButton: null,
    generation: 0, // bumped when the filter changes: answers to older requests are dropped
};

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
}

function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function sourceName(id) {
    return state.sourceNames.get(id) ?? `source ${id}`;
}

function setStatus(kind, text) {
    const status = $('status');
    status.className = `status ${kind}`;
    status.textContent = text;
}

// The details panel: a few fields, then the JSON.
function showDetails(button, fields, json) {
    if (state.selectedButton) state.selectedButton.classList.remove('selected');
    state.selectedButton = button;
    button.classList.add('selected');
    $('detail-hint').hidden = true;
    const list = $('detail-fields');
    list.replaceChildren();
    for (const [name, value] of fields) {
        if (value === null || value === undefined || value === '') continue;
        list.append(element('dt', null, name), element('dd', null, value));
    }
    $('event-detail').textContent = json;
    // On a phone the details are under the list: bring them into view.
    if (window.matchMedia('(max-width: 760px)').matches) $('detail-section').scrollIntoView({ block: 'start' });
}

function payloadText(row) {
    if (row.payload !== null && row.payload !== undefined) return JSON.stringify(row.payload, null, 2);
    if (row.raw !== null && row.raw !== undefined) return row.raw;
    return `(the payload is ${row.payload_bytes} bytes stored: too large to show here; read it with SQL, id ${row.id})`;
}

function eventRow(event) {
    const item = element('li');
    const button = element('button', 'row event-row new');
    button.type = 'button';
    button.dataset.id = event.id;
    button.append(element('span', 'time', formatTime(event.received_at)));
    const what = element('span', 'what');
    what.append(element('span', 'badge', event.type), document.createTextNode(event.event ?? event.message_id ?? ''));
    button.append(what);
    button.append(element('span', 'meta', `${sourceName(event.source_id)} · ${event.message_id} · #${event.id}`));
    button.addEventListener('click', () =>
        showDetails(
            button,
            [
                ['id', event.id],
                ['source', sourceName(event.source_id)],
                ['type', event.type],
                ['event', event.event],
                ['messageId', event.message_id],
                ['received', event.received_at],
            ],
            payloadText(event),
        ),
    );
    item.append(button);
    return item;
}

function rejectedRow(rejected) {
    const item = element('li');
    const button = element('button', 'row rejected-row new');
    button.type = 'button';
    button.dataset.id = rejected.id;
    button.append(element('span', 'time', formatTime(rejected.received_at)));
    const what = element('span', 'what');
    what.append(element('span', 'badge reason', rejected.reason), document.createTextNode(rejected.detail ?? ''));
    button.append(what);
    button.append(
        element('span', 'meta', `${sourceName(rejected.source_id)} · ${rejected.message_id ?? 'no messageId'} · #${rejected.id}`),
    );
    button.addEventListener('click', () =>
        showDetails(
            button,
            [
                ['dead letter', rejected.id],
                ['source', sourceName(rejected.source_id)],
                ['reason', rejected.reason],
                ['detail', rejected.detail],
                ['messageId', rejected.message_id],
                ['received', rejected.received_at],
            ],
            payloadText(rejected),
        ),
    );
    item.append(button);
    return item;
}

// Newest first: rows of an answer (already newest first) go on top; the oldest beyond MAX_ROWS go.
function prepend(list, rows, make) {
    const fragment = document.createDocumentFragment();
    for (const row of rows) fragment.append(make(row));
    list.prepend(fragment);
    while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    return list.children.length;
}

function renderSources(sources, counters) {
    state.sourceNames = new Map(sources.map((source) => [source.id, source.name]));
    const body = $('sources').tBodies[0];
    body.replaceChildren();
    for (const source of sources) {
        const count = counters[String(source.id)] ?? { stored: 0, duplicates: 0, rejected: 0 };
        const row = element('tr');
        // On a phone the Enabled column is hidden: a disabled source says so after its name.
        const name = element('td', null, source.name);
        if (!source.enabled) name.append(element('span', 'disabled-note', ' (disabled)'));
        row.append(
            name,
            element('td', 'enabled-column', source.enabled ? 'yes' : 'no'),
            element('td', 'number', count.stored),
            element('td', 'number', count.duplicates),
            element('td', 'number', count.rejected),
        );
        body.append(row);
    }
    const filter = $('source-filter');
    const names = sources.map((source) => source.name);
    const current = Array.from(filter.options).slice(1).map((option) => option.value);
    if (names.join('\n') !== current.join('\n')) {
        const chosen = filter.value;
        filter.replaceChildren(element('option', null, 'all sources'));
        filter.options[0].value = '';
        for (const name of names) {
            const option = element('option', null, name);
            option.value = name;
            filter.append(option);
        }
        filter.value = names.includes(chosen) ? chosen : '';
    }
}

function render(answer) {
    renderSources(answer.sources, answer.counters);
    if (answer.events.length > 0) {
        state.afterEvent = Math.max(state.afterEvent, ...answer.events.map((event) => event.id));
        state.shownEvents = prepend($('events'), answer.events, eventRow);
    }
    if (answer.rejected.length > 0) {
        state.afterRejected = Math.max(state.afterRejected, ...answer.rejected.map((row) => row.id));
        state.shownRejected = prepend($('rejected'), answer.rejected, rejectedRow);
    }
    $('events-empty').hidden = state.shownEvents > 0;
    $('rejected-empty').hidden = state.shownRejected > 0;
    $('event-count').textContent = state.shownEvents ? `(${state.shownEvents})` : '';
    $('rejected-count').textContent = state.shownRejected ? `(${state.shownRejected})` : '';
}

async function poll() {
    const generation = state.generation;
    if (!state.paused) {
        const parameters = new URLSearchParams({
            after: String(state.afterEvent),
            rejected_after: String(state.afterRejected),
            limit: '50',
        });
        if (state.source) parameters.set('source', state.source);
        try {
            const response = await fetch(`/api/recent?${parameters}`, { cache: 'no-store', credentials: 'same-origin' });
            const answer = await response.json().catch(() => null);
            if (!response.ok) {
                const message = answer && answer.error ? answer.error.message : response.statusText;
                throw new Error(`${response.status}: ${message}`);
            }
            if (generation === state.generation) {
                render(answer);
                setStatus('live', `live · updated ${new Date().toLocaleTimeString()}`);
            }
        } catch (error) {
            setStatus('error', `not updated: ${error.message}`);
        }
    }
    setTimeout(poll, POLL_MS);
}

function start() {
    // The ?token= that opened the page has set the session cookie: keep it out of the address bar and history.
    const url = new URL(window.location.href);
    if (url.searchParams.has('token')) {
        url.searchParams.delete('token');
        window.history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
    $('pause').addEventListener('click', () => {
        state.paused = !state.paused;
        $('pause').textContent = state.paused ? 'Resume' : 'Pause';
        if (state.paused) setStatus('', 'paused');
    });
    $('source-filter').addEventListener('change', (event) => {
        state.source = event.target.value;
        state.generation += 1;
        state.afterEvent = 0;
        state.afterRejected = 0;
        state.shownEvents = 0;
        state.shownRejected = 0;
        $('events').replaceChildren();
        $('rejected').replaceChildren();
    });
    poll();
}

start();
