import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Validate the graph: each of its most influential features edited alone, the effect on the
// target logit that the graph predicts against the one the replacement model shows, in the
// constrained regime (direct edges: on the diagonal) and the free one (path sums), with
// Pearson's r; and the table of the target logits under the list of interventions (the
// paper's Figure 19).
Item {
    id: view
    clip: true

    required property ExplorerController explorer
    readonly property ExplorerValidation validation: explorer.validation
    readonly property color constrainedColor: Theme.dark ? "#5b8ee8" : "#2f6db5"
    readonly property color freeColor: Theme.dark ? "#ec9a55" : "#d9731f"
    // What the scatter shows: the effects on the target logit, or on the other top nodes.
    readonly property bool downstream: shown.currentIndex === 1
    readonly property var shownPoints: downstream ? validation.downstreamPoints : validation.points

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.spacing

        Flow {
            Layout.fillWidth: true
            spacing: Theme.spacing
            enabled: view.explorer.interventionsAvailable
            Label {
                height: count.height
                verticalAlignment: Text.AlignVCenter
                text: "Top"
                color: Theme.textMuted
            }
            SpinBox {
                id: count
                objectName: "validationCount"
                from: 1
                to: 500
                value: 30
                editable: true
                width: 100
            }
            ComboBox {
                id: op
                objectName: "validationOp"
                width: 110
                model: ["Ablate", "Scale ×−1"]
            }
            Button {
                objectName: "validateButton"
                text: "Validate graph"
                enabled: !view.validation.validating
                onClicked: view.validation.validate(count.value, op.currentIndex === 0 ? "ablate" : "scale", -1)
            }
        }
        Label {
            objectName: "validationText"
            visible: text !== ""
            Layout.fillWidth: true
            text: view.validation.validationText
            wrapMode: Text.Wrap
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }

        ComboBox {
            id: shown
            objectName: "validationShown"
            Layout.fillWidth: true
            visible: view.validation.points.length > 0
            model: ["Effect on the target logit", "Effect on the other top nodes each edit reaches"]
            onCurrentIndexChanged: scatter.requestPaint()
        }
        Canvas {
            id: scatter
            objectName: "validationScatter"
            Layout.fillWidth: true
            Layout.preferredHeight: Math.min(width * 0.8, 340)
            visible: view.validation.points.length > 0
            onWidthChanged: requestPaint()
            onHeightChanged: requestPaint()
            Connections {
                target: view.validation
                function onValidationChanged() { scatter.requestPaint() }
            }
            onPaint: {
                const ctx = getContext("2d")
                ctx.reset()
                const pts = view.shownPoints
                if (pts.length === 0)
                    return
                const left = 52, bottom = 30, top = 8, right = 8
                const w = width - left - right, h = height - top - bottom
                let lo = 0, hi = 0
                for (const p of pts)
                    for (const v of [p.predicted, p.actualConstrained, p.predictedFree, p.actualFree]) {
                        lo = Math.min(lo, v)
                        hi = Math.max(hi, v)
                    }
                const pad = (hi - lo) * 0.06 + 1e-6
                lo -= pad
                hi += pad
                const X = v => left + (v - lo) / (hi - lo) * w
                const Y = v => top + h - (v - lo) / (hi - lo) * h
                ctx.font = "9px sans-serif"
                // Frame, zero lines, the diagonal (prediction = outcome).
                ctx.strokeStyle = Theme.border
                ctx.lineWidth = 1
                ctx.strokeRect(left, top, w, h)
                ctx.strokeStyle = Theme.divider
                ctx.beginPath()
                ctx.moveTo(X(0), top); ctx.lineTo(X(0), top + h)
                ctx.moveTo(left, Y(0)); ctx.lineTo(left + w, Y(0))
                ctx.stroke()
                ctx.strokeStyle = Theme.textFaint
                ctx.setLineDash([4, 3])
                ctx.beginPath()
                ctx.moveTo(X(lo), Y(lo)); ctx.lineTo(X(hi), Y(hi))
                ctx.stroke()
                ctx.setLineDash([])
                // Ticks: about five, at 1, 2 or 5 times a power of ten.
                ctx.fillStyle = Theme.textMuted
                const raw = (hi - lo) / 5
                const power = Math.pow(10, Math.floor(Math.log10(raw)))
                const step = raw / power >= 5 ? 5 * power : raw / power >= 2 ? 2 * power : power
                for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
                    const label = Math.abs(t) < step / 2 ? "0" : t.toFixed(step < 1 ? 1 : 0)
                    const width = ctx.measureText(label).width
                    ctx.fillText(label, X(t) - width / 2, top + h + 12)
                    ctx.fillText(label, left - 5 - width, Y(t) + 3)
                }
                const axisText = view.downstream ? "predicted change of the node's activation"
                                                 : "predicted effect on the target logit"
                ctx.fillText(axisText, left + w / 2 - ctx.measureText(axisText).width / 2, top + h + 25)
                ctx.save()
                ctx.translate(10, top + h / 2 + 12)
                ctx.rotate(-Math.PI / 2)
                ctx.fillText("actual", 0, 0)
                ctx.restore()
                // Free first, constrained on top.
                for (const p of pts) {
                    ctx.fillStyle = view.freeColor
                    ctx.beginPath()
                    ctx.arc(X(p.predictedFree), Y(p.actualFree), 3.5, 0, 2 * Math.PI)
                    ctx.fill()
                }
                for (const p of pts) {
                    ctx.fillStyle = view.constrainedColor
                    ctx.beginPath()
                    ctx.arc(X(p.predicted), Y(p.actualConstrained), 3.5, 0, 2 * Math.PI)
                    ctx.fill()
                }
            }
        }
        Flow {
            Layout.fillWidth: true
            visible: scatter.visible
            spacing: 12
            Repeater {
                model: [
                    { name: "constrained (direct edges)", color: view.constrainedColor,
                      r: view.downstream ? view.validation.downstreamCorrelationConstrained : view.validation.correlationConstrained },
                    { name: "free (path sums)", color: view.freeColor,
                      r: view.downstream ? view.validation.downstreamCorrelationFree : view.validation.correlationFree }
                ]
                delegate: Row {
                    required property var modelData
                    spacing: 4
                    Rectangle {
                        width: 9
                        height: 9
                        radius: 4.5
                        anchors.verticalCenter: parent.verticalCenter
                        color: parent.modelData.color
                    }
                    Label {
                        text: parent.modelData.name + "  r = "
                              + (isFinite(parent.modelData.r) ? parent.modelData.r.toFixed(3) : "—")
                        color: Theme.text
                        font.pointSize: Theme.smallSize
                    }
                }
            }
        }
        BusyIndicator {
            running: view.validation.validating
            visible: running
            Layout.alignment: Qt.AlignHCenter
        }

        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: 1
            color: Theme.divider
        }
        RowLayout {
            Layout.fillWidth: true
            enabled: view.explorer.interventionsAvailable
            Label {
                Layout.fillWidth: true
                text: "The target logits under each intervention of the list"
                wrapMode: Text.Wrap
                color: Theme.textMuted
            }
            Button {
                objectName: "tableButton"
                text: "Make table"
                enabled: !view.validation.tabling
                onClicked: view.validation.buildTable()
            }
        }
        Label {
            visible: text !== ""
            text: view.validation.tableText
            color: Theme.textFaint
            font.pointSize: Theme.smallSize
        }
        ListView {
            id: table
            objectName: "interventionTable"
            Layout.fillWidth: true
            Layout.fillHeight: true
            Layout.minimumHeight: 60
            clip: true
            model: view.validation.table
            header: RowLayout {
                width: ListView.view.width
                Label {
                    Layout.fillWidth: true
                    text: "intervention"
                    color: Theme.textFaint
                    font.pointSize: Theme.smallSize
                }
                Repeater {
                    model: view.validation.tableTokens
                    delegate: Label {
                        required property string modelData
                        Layout.preferredWidth: 56
                        horizontalAlignment: Text.AlignRight
                        text: modelData.trim()
                        elide: Text.ElideRight
                        font.family: Theme.monoFamily
                        color: Theme.textFaint
                        font.pointSize: Theme.smallSize
                    }
                }
                Label {
                    Layout.preferredWidth: 84
                    text: "top (p)"
                    horizontalAlignment: Text.AlignRight
                    color: Theme.textFaint
                    font.pointSize: Theme.smallSize
                }
            }
            delegate: RowLayout {
                id: tableRow
                required property var modelData
                required property int index
                width: ListView.view.width
                Label {
                    Layout.fillWidth: true
                    text: tableRow.modelData.name
                    elide: Text.ElideRight
                    color: Theme.text
                    font.pointSize: Theme.smallSize
                }
                Repeater {
                    model: tableRow.modelData.logits
                    delegate: Label {
                        required property real modelData
                        Layout.preferredWidth: 56
                        horizontalAlignment: Text.AlignRight
                        text: modelData.toFixed(2)
                        font.family: Theme.monoFamily
                        font.pointSize: Theme.smallSize
                        color: Theme.text
                    }
                }
                Label {
                    Layout.preferredWidth: 84
                    horizontalAlignment: Text.AlignRight
                    text: tableRow.modelData.top.trim() + " " + (tableRow.modelData.topProb * 100).toFixed(0) + "%"
                    elide: Text.ElideRight
                    font.family: Theme.monoFamily
                    font.pointSize: Theme.smallSize
                    color: tableRow.index > 0 && tableRow.modelData.top !== view.validation.table[0].top ? Theme.error : Theme.text
                }
            }
        }
    }
}
