// How a document's endorsements read in a list: one item per organisation,
// its stance, note and who gave it (named by the caller's `label`, which
// knows the verified members). The recommendation and each amendment show
// their endorsements this way.

import { h, fill } from "./dom.js"
import { t } from "./i18n.js"
import * as M from "./model.js"

/** Fill `list` with `entries` ([organisation, endorsement] pairs), or the hint that there are none. `after(e)`: text after the name (the recommendation shows the time). */
export function fillEndorsements(list, entries, label, after = () => "") {
  fill(
    list,
    entries.length
      ? entries.map(([org, e]) =>
          h(
            "li",
            { dataset: { organisation: org, stance: M.str(e.stance) } },
            h("strong", {}, org),
            ": ",
            h("span", { class: `badge stance-${M.str(e.stance)}` }, t(M.str(e.stance))),
            M.str(e.note) ? ` – ${M.str(e.note)}` : "",
            h("span", { class: "meta" }, ` ${t("by", { name: label(M.str(e.by)) })}${after(e)}`)
          )
        )
      : h("li", { class: "hint" }, t("noEndorsements"))
  )
}
