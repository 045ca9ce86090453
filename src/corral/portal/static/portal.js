// Corral portal: copy buttons, confirmations, the streaming playground and the usage charts.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });

  // Forms that undo something ask first.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  const chatForm = document.getElementById("chat-form");
  if (chatForm) playground(chatForm);
  const usageData = document.getElementById("usage-data");
  if (usageData && window.Chart) usageCharts(JSON.parse(usageData.textContent));

  function playground(form) {
    const $ = (id) => document.getElementById(id);
    const transcript = $("transcript"), errorBox = $("chat-error");
    const send = $("send"), stop = $("stop"), message = $("message");
    const history = [];
    let controller = null;

    function turn(role, text) {
      const item = document.createElement("li");
      item.className = "turn " + role;
      const who = document.createElement("span");
      who.className = "who-said";
      who.textContent = role === "user" ? "You" : $("model").value;
      const body = document.createElement("span");
      body.className = "content";
      body.textContent = text;
      item.append(who, body);
      transcript.append(item);
      return item;
    }

    function busy(on) {
      send.disabled = on;
      stop.disabled = !on;
    }

    function fail(text) {
      errorBox.textContent = text;
      errorBox.hidden = false;
    }

    function cost(usage) {
      const option = $("model").selectedOptions[0];
      const input = parseFloat(option.dataset.input || "0");
      const output = parseFloat(option.dataset.output || "0");
      const usd = (usage.prompt_tokens * input + usage.completion_tokens * output) / 1e6;
      return usd >= 0.01 ? "$" + usd.toFixed(2) : "$" + usd.toFixed(6);
    }

    async function ask() {
      const text = message.value.trim();
      if (!text || controller) return;
      errorBox.hidden = true;
      const system = $("system").value.trim();
      history.push({ role: "user", content: text });
      const messages = (system ? [{ role: "system", content: system }] : []).concat(history);
      turn("user", text);
      message.value = "";
      const reply = turn("assistant", "");
      reply.setAttribute("aria-busy", "true");
      controller = new AbortController();
      busy(true);
      const started = performance.now();
      try {
        const response = await fetch(form.dataset.endpoint, {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": csrf },
          body: JSON.stringify({
            model: $("model").value,
            messages: messages,
            temperature: parseFloat($("temperature").value),
            max_tokens: parseInt($("max-tokens").value, 10),
          }),
          signal: controller.signal,
        });
        if (!response.ok) {
          const problem = await response.json().catch(() => null);
          throw new Error(problem?.error?.message || "The API answered " + response.status);
        }
        const { answer, usage } = await readStream(response, reply.querySelector(".content"));
        history.push({ role: "assistant", content: answer });
        const stats = document.createElement("span");
        stats.className = "stats";
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        stats.textContent = usage
          ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens · ${cost(usage)} · ${seconds} s`
          : `${seconds} s`;
        reply.append(stats);
      } catch (err) {
        history.pop();
        if (err.name !== "AbortError") fail(err.message);
        if (!reply.querySelector(".content").textContent) reply.remove();
      } finally {
        reply.removeAttribute("aria-busy");
        controller = null;
        busy(false);
        message.focus();
      }
    }

    async function readStream(response, target) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", answer = "", usage = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") return { answer, usage };
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message || "The answer failed");
            if (chunk.usage) usage = chunk.usage;
            const piece = chunk.choices?.[0]?.delta?.content;
            if (piece) {
              answer += piece;
              target.textContent = answer;
            }
          }
        }
      }
      return { answer, usage };
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      ask();
    });
    message.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        ask();
      }
    });
    stop.addEventListener("click", () => controller?.abort());
    $("clear").addEventListener("click", () => {
      controller?.abort();
      history.length = 0;
      transcript.replaceChildren();
      errorBox.hidden = true;
      message.focus();
    });
  }

  function usageCharts(series) {
    const style = getComputedStyle(document.documentElement);
    const css = (name) => style.getPropertyValue(name).trim();
    const colors = [1, 2, 3, 4, 5, 6].map((i) => css("--series-" + i));
    window.Chart.defaults.color = css("--muted");
    window.Chart.defaults.borderColor = css("--line");
    const money = (v) => (v >= 1 || v === 0 ? "$" + Number(v).toFixed(2) : "$" + Number(v).toPrecision(2));
    const draw = (id, values, format) => {
      const canvas = document.getElementById(id);
      if (!canvas) return;
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: series.days,
          datasets: series.models.map((model, i) => ({
            label: model,
            data: values[model],
            backgroundColor: colors[i % colors.length],
          })),
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          scales: {
            x: { stacked: true },
            y: { stacked: true, beginAtZero: true, ticks: { callback: format } },
          },
          plugins: {
            tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${format(ctx.parsed.y)}` } },
          },
        },
      });
    };
    draw("tokens-chart", series.tokens, (v) => Number(v).toLocaleString());
    draw("cost-chart", series.cost, money);
  }
})();
