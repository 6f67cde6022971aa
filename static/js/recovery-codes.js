// The "Copy the codes" and "Download the codes" buttons on the recovery codes page. Both work from the codes
// already on the page: the codes are never sent to the server again, and are kept only where the person
// saves them. Without JavaScript the buttons stay hidden and the page asks for the codes to be written down.

const codesOn = (list) => Array.from(list.querySelectorAll(".app-recovery-code"), (item) => item.textContent.trim());

export function initRecoveryCodes(doc) {
  const actions = doc.getElementById("recovery-code-actions");
  const list = doc.getElementById("recovery-codes");
  if (!actions || !list) {
    return;
  }
  const status = doc.getElementById("recovery-codes-status");
  const say = (message) => {
    status.textContent = message;
  };

  const copyButton = doc.getElementById("copy-recovery-codes");
  if (navigator.clipboard && window.isSecureContext) {
    copyButton.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(codesOn(list).join("\n") + "\n");
        say("The codes are copied. Paste them somewhere safe, such as a password manager.");
      } catch {
        say("Your browser did not let us copy the codes. Select them and copy them, or download them instead.");
      }
    });
  } else {
    copyButton.hidden = true;
  }

  const downloadButton = doc.getElementById("download-recovery-codes");
  downloadButton.addEventListener("click", () => {
    const filename = downloadButton.dataset.filename;
    const text = [downloadButton.dataset.heading, "", ...codesOn(list), ""].join("\r\n");
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
    const link = doc.createElement("a");
    link.href = url;
    link.download = filename;
    link.hidden = true;
    doc.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    say(`The codes are downloaded as ${filename}. Keep the file somewhere safe.`);
  });

  actions.hidden = false;
}
