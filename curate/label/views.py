"""The layout every generated review view shares: the photo on the left, one 340 px panel on the right.

Adjudication and audit projects differ only in the panel's header, the task text it shows and the
controls between the diagnosis and the comment, so both build their config here and a change to the
layout (which must keep the view free of scrolling at 1366 x 768) is made once.
"""

from __future__ import annotations

from curate.label.diagnoses import COMMENT_CONTROL, DIAGNOSIS_CONTROL, IMAGE_OBJECT


def side_panel_config(origin: str, header: str, summary: str, extra: str = "") -> str:
    """Label config: photo, `header`, the task's `$summary` (as Text `summary`) and `$rule`, the diagnosis
    choices the task offers (`$options`), then `extra` (XML lines, indented 6 spaces), then a comment box.
    `origin` names the view and the module that generates it, in a comment a Label Studio admin can read."""
    return f"""<View>
  <!-- mpox-curate {origin}. -->
  <View style="display:flex; gap:16px; align-items:flex-start">
    <View style="flex:1 1 auto; min-width:0">
      <Image name="{IMAGE_OBJECT}" value="$image" zoom="true" zoomControl="true" rotateControl="false" maxWidth="100%"/>
    </View>
    <View style="flex:0 0 340px">
      <Header value="{header}" size="5"/>
      <Text name="{summary}" value="$summary"/>
      <Text name="rule" value="$rule"/>
      <Choices name="{DIAGNOSIS_CONTROL}" toName="{IMAGE_OBJECT}" choice="single-radio" required="true"
               value="$options"/>
{extra}      <TextArea name="{COMMENT_CONTROL}" toName="{IMAGE_OBJECT}" editable="true" maxSubmissions="1" rows="2"
                placeholder="Comment"/>
    </View>
  </View>
</View>
"""
